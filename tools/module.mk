# tools/: sbx-agentctl and friends.
AGENTCTL_SRCS := tools/sbx-agentctl.c tools/agentctl_exec.c tools/agentctl_run.c
AGENTCTL_OBJS := $(AGENTCTL_SRCS:%.c=$(O)/%.o)
CFLAGS_tools := -Ihost $(call pc_cflags,jansson)
BINS += $(O)/sbx-agentctl

$(O)/sbx-agentctl: $(AGENTCTL_OBJS) $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(AGENTCTL_OBJS) $(O)/libsbxhost.a $(HOST_LIBS) \
		$(LIBPROTO) $(LIBPROTO_LIBS) $(call pc_libs,jansson)
include tools/sbx.mk
