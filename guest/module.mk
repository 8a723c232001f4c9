# guest/: sbx-agent, the static PID 1 of every sandbox.
GUEST_SRCS := $(wildcard guest/*.c)
GUEST_OBJS := $(GUEST_SRCS:%.c=$(OBJ)/%.o)
CFLAGS_guest :=
BINS += $(O)/sbx-agent

# The agent is PID 1 of an initramfs with no libraries: a dynamic
# dependency is a build failure (sanitizer builds are dynamic on purpose).
# It is linked statically, hence without -pie.
$(O)/sbx-agent: $(GUEST_OBJS) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(filter-out -pie,$(LDFLAGS)) $(AGENT_STATIC) -o $@.tmp $(GUEST_OBJS) \
		$(PROTO_LINK) -luring
	$(Q)if [ -n "$(AGENT_STATIC)" ] && readelf -d $@.tmp | grep -q NEEDED; then \
		echo "$@ is not static:"; readelf -d $@.tmp | grep NEEDED; rm -f $@.tmp; exit 1; \
	fi
	$(Q)mv $@.tmp $@
