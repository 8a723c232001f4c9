# guest/: sbx-agent, the static PID 1 of every sandbox.
GUEST_SRCS := $(wildcard guest/*.c)
GUEST_OBJS := $(GUEST_SRCS:%.c=$(O)/%.o)
CFLAGS_guest :=
GUEST_LIBS := $(LIBPROTO) $(LIBPROTO_LIBS) -luring
BINS += $(O)/sbx-agent

# The agent is PID 1 of an initramfs with no libraries: a dynamic
# dependency is a build failure (sanitizer builds are dynamic on purpose).
$(O)/sbx-agent: $(GUEST_OBJS) $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) $(AGENT_STATIC) -o $@.tmp $(GUEST_OBJS) $(GUEST_LIBS)
	$(Q)if [ -n "$(AGENT_STATIC)" ] && readelf -d $@.tmp | grep -q NEEDED; then \
		echo "$@ is not static:"; readelf -d $@.tmp | grep NEEDED; rm -f $@.tmp; exit 1; \
	fi
	$(Q)mv $@.tmp $@

# Unit suite: drives the real binary (--listen unix:...) through proto.h, and
# tests the pure parts (ring, kernel command line) directly.
AGENT_TEST_SRCS := tests/unit/check_agent.c tests/unit/agent_testclient.c
AGENT_TEST_OBJS := $(AGENT_TEST_SRCS:%.c=$(O)/%.o)
$(AGENT_TEST_OBJS): CFLAGS += $(call pc_cflags,check) -Iguest \
	-DSBX_AGENT_BIN='"$(abspath $(O))/sbx-agent"'

$(O)/tests/check_agent: $(AGENT_TEST_OBJS) $(O)/guest/ring.o $(O)/guest/init.o $(LIBPROTO) \
		$(O)/sbx-agent
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(AGENT_TEST_OBJS) $(O)/guest/ring.o $(O)/guest/init.o \
		$(LIBPROTO) $(LIBPROTO_LIBS) $(call pc_libs,check)

UNIT_BINS += $(O)/tests/check_agent
