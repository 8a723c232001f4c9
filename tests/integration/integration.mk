# tests/integration: suites that boot real microVMs (TCG here), run by
# make test after the unit suites, in this order.

# host/vm/: the VM driver
$(O)/tests/check_vm: $(OBJ)/tests/integration/check_vm.o $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HOST_LINK) $(CHECK_LIBS)

# sbxd restarted under kill -9 with two sandboxes
$(O)/tests/check_sbxd: $(OBJ)/tests/integration/check_sbxd.o $(LIBSBXD) $(LIBSBXSNAP) \
		$(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(CHECK_LIBS) $(call pc_libs,libcurl)
$(O)/tests/check_sbxd: | $(O)/sbxd

# the agent in a real guest: commands, files, limits
$(O)/tests/check_integration: $(OBJ)/tests/integration/check_integration.o $(LIBSBXHOST) \
		$(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HOST_LINK) $(CHECK_LIBS) $(call pc_libs,libcrypto)

# snapshots, restores and forks
$(O)/tests/check_snapshot: $(OBJ)/tests/integration/check_snapshot.o $(LIBSBXSNAP) \
		$(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SNAP_LINK) $(CHECK_LIBS)

VM_TEST_BINS += $(O)/tests/check_vm $(O)/tests/check_sbxd $(O)/tests/check_integration \
	$(O)/tests/check_snapshot

# End to end against a real sbxd and real microVMs (need $(O)/sbxd, $(O)/sbx
# and the default image); each prints a Check-style summary line.
EXTRA_TEST_STEPS += tests/integration/sbx_cli.sh
# kill -9 of sbxd during create, exec, snapshot, stop, delete (docs/sbxd.md)
EXTRA_TEST_STEPS += tests/integration/crash_loop.sh
test-bins: $(O)/sbx
