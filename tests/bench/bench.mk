# tests/bench: `make bench` prints figures; nothing is asserted.
BENCH_AGENT := $(O)/tests/bench_agent
$(BENCH_AGENT): $(OBJ)/tests/bench/bench_agent.o $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HOST_LINK)

BENCH_BINS += $(BENCH_AGENT)

bench: deps
	$(Q)$(MAKE) --no-print-directory all image $(BENCH_BINS)
	$(Q)for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

# Snapshot starts, forks and their memory (snapshot/ over real VMs).
BENCH_SNAP := $(O)/tests/bench_snap
$(BENCH_SNAP): $(OBJ)/tests/bench/bench_snap.o $(LIBSBXSNAP) $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SNAP_LINK)

BENCH_BINS += $(BENCH_SNAP)
