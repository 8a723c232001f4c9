# host/agent_client.mk - the agent client (part of libsbxhost.a) and its unit
# suite. Included from host/module.mk.
HOST_LIB_SRCS += host/agent_client.c host/agent_client_cmd.c host/agent_client_file.c \
	host/agent_client_sync.c

# Check suite: drives the real agent ($(O)/sbx-agent --listen unix:...) and
# $(O)/sbx-agentctl; both are found next to the test binary's directory.
CHECK_CLIENT := $(O)/tests/check_client
$(O)/tests/unit/check_client.o: CFLAGS += -I. -Ihost $(call pc_cflags,check jansson)

$(CHECK_CLIENT): $(O)/tests/unit/check_client.o $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(O)/libsbxhost.a $(HOST_LIBS) $(LIBPROTO) \
		$(LIBPROTO_LIBS) $(call pc_libs,check jansson)

UNIT_BINS += $(CHECK_CLIENT)
$(CHECK_CLIENT): | $(filter $(O)/sbx-agent,$(BINS)) $(O)/sbx-agentctl
