# tests/bench: `make bench` prints figures; nothing is asserted.
BENCH_AGENT := $(O)/tests/bench_agent
$(O)/tests/bench/%.o: CFLAGS += -Ihost

$(BENCH_AGENT): $(O)/tests/bench/bench_agent.o $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(O)/libsbxhost.a $(HOST_LIBS) $(LIBPROTO) $(LIBPROTO_LIBS)

BENCH_BINS += $(BENCH_AGENT)

bench: deps
	$(Q)$(MAKE) --no-print-directory all image $(BENCH_BINS)
	$(Q)for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

# Snapshot starts, forks and their memory (snapshot/ over real VMs).
BENCH_SNAP := $(O)/tests/bench_snap
$(O)/tests/bench/bench_snap.o: CFLAGS += -Isnapshot

$(BENCH_SNAP): $(O)/tests/bench/bench_snap.o $(O)/libsbxsnap.a $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(O)/libsbxsnap.a $(O)/libsbxhost.a $(HOST_LIBS) \
		$(LIBPROTO) $(LIBPROTO_LIBS) $(SNAP_LIBS)

BENCH_BINS += $(BENCH_SNAP)
