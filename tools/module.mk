# tools/: sbx-agentctl (the agent protocol by hand), sbx-snapshot (the
# snapshot store offline) and sbx (tools/sbx.mk), each through the public
# headers of the layers it uses.
AGENTCTL_SRCS := tools/sbx-agentctl.c tools/agentctl_exec.c tools/agentctl_run.c
CFLAGS_tools := $(CFLAGS_snapshot)
BINS += $(O)/sbx-agentctl $(O)/sbx-snapshot

$(O)/sbx-agentctl: $(AGENTCTL_SRCS:%.c=$(OBJ)/%.o) $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(HOST_LINK)

$(O)/sbx-snapshot: $(OBJ)/tools/sbx-snapshot.o $(LIBSBXSNAP) $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SNAP_LINK)

include tools/sbx.mk
