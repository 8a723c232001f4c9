# tests/unit: Check suites that need no VM (make unit runs them all).
# Each links the libraries it tests; fakes stand in only for what a unit
# suite must not start (a VM backend, in check_api).

# protocol/: frames, messages, credits
$(O)/tests/check_proto: $(OBJ)/tests/unit/check_proto.o $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(PROTO_LINK) $(CHECK_LIBS)

# guest/: drives the real agent binary (--listen unix:...) and tests the
# pure parts (ring, kernel command line) directly
AGENT_TEST_OBJS := $(OBJ)/tests/unit/check_agent.o $(OBJ)/tests/unit/agent_testclient.o
$(AGENT_TEST_OBJS): CFLAGS += -DSBX_AGENT_BIN='"$(abspath $(O))/sbx-agent"'
$(O)/tests/check_agent: $(AGENT_TEST_OBJS) $(OBJ)/guest/ring.o $(OBJ)/guest/init.o $(LIBPROTO) \
		$(LIBBASE) $(O)/sbx-agent
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(AGENT_TEST_OBJS) $(OBJ)/guest/ring.o $(OBJ)/guest/init.o \
		$(PROTO_LINK) $(CHECK_LIBS)

# host/agent/: the agent client against the real agent and sbx-agentctl
# (both found next to the test binary's directory)
$(O)/tests/check_client: $(OBJ)/tests/unit/check_client.o $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HOST_LINK) $(CHECK_LIBS)
$(O)/tests/check_client: | $(O)/sbx-agent $(O)/sbx-agentctl

# snapshot/: manifests, store, verify, refs/GC, export/import
SNAP_CHECK_OBJS := $(OBJ)/tests/unit/check_snap.o $(OBJ)/tests/unit/check_snap_io.o
$(O)/tests/check_snap: $(SNAP_CHECK_OBJS) $(LIBSBXSNAP) $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(SNAP_CHECK_OBJS) $(SNAP_LINK) $(CHECK_LIBS)

# sbxd/: the store, the API (a real server on loopback driven with libcurl
# over a fake VM backend), the audit log, metrics, the JSON log sink, and
# the data plane's pure parsers
SBXD_TEST_LIBS := $(CHECK_LIBS) $(call pc_libs,libcurl)
SBXD_CHECKS := check_store check_api check_audit check_metrics check_log
$(SBXD_CHECKS:%=$(O)/tests/%): $(O)/tests/%: $(OBJ)/tests/unit/%.o $(LIBSBXD) $(LIBSBXSNAP) \
		$(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)

$(O)/tests/check_dp: $(OBJ)/tests/unit/check_dp.o $(DP_PURE_SRCS:%.c=$(OBJ)/%.o) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBBASE) $(call pc_libs,jansson) $(CHECK_LIBS)

# tools/: sbx's config files, NAME:PATH, URLs, error bodies, stream messages
$(O)/tests/check_sbx: $(OBJ)/tests/unit/check_sbx.o $(LIBSBXCLI) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBX_LINK) $(CHECK_LIBS)

UNIT_BINS += $(O)/tests/check_proto $(O)/tests/check_agent $(O)/tests/check_client \
	$(O)/tests/check_snap $(SBXD_CHECKS:%=$(O)/tests/%) $(O)/tests/check_dp \
	$(O)/tests/check_sbx

# host/vm/: what needs no VM: vm.info (JSON, the old format, damaged
# files), the domain XML read back with libxml2, vmu_spawn
$(O)/tests/check_vm_pure: $(OBJ)/tests/unit/check_vm_pure.o $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HOST_LINK) $(CHECK_LIBS)

UNIT_BINS += $(O)/tests/check_vm_pure
