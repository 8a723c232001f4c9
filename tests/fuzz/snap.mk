# tests/fuzz/snap.mk - libFuzzer target of the snapshot manifest parser
# (snapshot/manifest.c; untrusted: imported archives carry manifests):
#   fuzz_snap   snap_manifest_parse() and a format/parse round trip
# Included from tests/module.mk after fuzz.mk. Adds to `make fuzz` /
# `make fuzz-run` (FUZZ_SNAP_TIME seconds) and to the corpus replay of
# `make unit` (tests/fuzz/corpus/snap/).
FUZZ_SNAP_SRCS := snapshot/manifest.c snapshot/util.c $(BASE_SRCS)
FUZZ_SNAP_TIME ?= $(FUZZ_TIME)

$(FUZZ_O)/fuzz_snap: $(FUZZ_O)/tests/fuzz/fuzz_snap.o $(FUZZ_SNAP_SRCS:%.c=$(FUZZ_O)/%.o)
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
$(O)/tests/fuzz_snap_replay: $(OBJ)/tests/fuzz/fuzz_snap.o $(OBJ)/tests/fuzz/replay.o \
		$(FUZZ_SNAP_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pc_libs,jansson)

FUZZ_REPLAY_BINS += $(O)/tests/fuzz_snap_replay
.PHONY: fuzz-run-snap
