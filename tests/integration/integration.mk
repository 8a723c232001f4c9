# tests/integration: suites that boot real microVMs (TCG here).
CHECK_INTEGRATION := $(O)/tests/check_integration
$(O)/tests/integration/%.o: CFLAGS += -Ihost $(call pc_cflags,check openssl)

$(CHECK_INTEGRATION): $(O)/tests/integration/check_integration.o $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(O)/libsbxhost.a $(HOST_LIBS) $(LIBPROTO) \
		$(LIBPROTO_LIBS) $(call pc_libs,check libcrypto)

VM_TEST_BINS += $(CHECK_INTEGRATION)

# Snapshots, restores and forks (snapshot/ over real VMs).
CHECK_SNAPSHOT := $(O)/tests/check_snapshot
$(O)/tests/integration/check_snapshot.o: CFLAGS += -Isnapshot

$(CHECK_SNAPSHOT): $(O)/tests/integration/check_snapshot.o $(O)/libsbxsnap.a $(O)/libsbxhost.a \
		$(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(O)/libsbxsnap.a $(O)/libsbxhost.a $(HOST_LIBS) \
		$(LIBPROTO) $(LIBPROTO_LIBS) $(SNAP_LIBS) $(call pc_libs,check)

VM_TEST_BINS += $(CHECK_SNAPSHOT)
