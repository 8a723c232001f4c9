# tests/fuzz/snap.mk - libFuzzer target of the snapshot manifest parser
# (snapshot/manifest.c; untrusted: imported archives carry manifests):
#   fuzz_snap   snap_manifest_parse() and a format/parse round trip
# Included from tests/module.mk after fuzz.mk. Adds to `make fuzz` /
# `make fuzz-run` (FUZZ_SNAP_TIME seconds) and to the corpus replay of
# `make unit` (tests/fuzz/corpus/snap/).
FUZZ_SNAP_SRCS := snapshot/manifest.c snapshot/util.c
FUZZ_SNAP_OBJS := $(FUZZ_SNAP_SRCS:%.c=$(FUZZ_O)/%.o)
FUZZ_SNAP_TIME ?= $(FUZZ_TIME)

$(FUZZ_O)/snapshot/%.o: snapshot/%.c
	$(quiet) FUZZCC $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CFLAGS_snapshot) \
		-c -o $@ $<

$(FUZZ_O)/fuzz_snap.o: tests/fuzz/fuzz_snap.c
	$(quiet) FUZZCC $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CFLAGS_snapshot) \
		-c -o $@ $<

$(FUZZ_O)/fuzz_snap: $(FUZZ_O)/fuzz_snap.o $(FUZZ_SNAP_OBJS)
	$(quiet) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(call pc_libs,jansson)

fuzz: $(FUZZ_O)/fuzz_snap

fuzz-run: fuzz-run-snap
fuzz-run-snap: $(FUZZ_O)/fuzz_snap
	@mkdir -p $(FUZZ_O)/corpus/snap $(FUZZ_O)/artifacts
	$(Q)cp tests/fuzz/corpus/snap/* $(FUZZ_O)/corpus/snap/
	$(Q)$(FUZZ_O)/fuzz_snap $(FUZZ_OPTS) -max_total_time=$(FUZZ_SNAP_TIME) \
		-artifact_prefix=$(FUZZ_O)/artifacts/ $(FUZZ_O)/corpus/snap

# The same target under the normal compiler, replaying the corpus.
$(O)/tests/fuzz/fuzz_snap.o: CFLAGS += $(CFLAGS_snapshot)
$(O)/tests/fuzz_snap_replay: $(O)/tests/fuzz/fuzz_snap.o $(O)/tests/fuzz/replay.o \
		$(FUZZ_SNAP_SRCS:%.c=$(O)/%.o)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pc_libs,jansson)

FUZZ_REPLAY_BINS += $(O)/tests/fuzz_snap_replay
.PHONY: fuzz-run-snap
-include $(wildcard $(FUZZ_O)/snapshot/*.d)
