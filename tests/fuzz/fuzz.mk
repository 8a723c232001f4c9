# tests/fuzz/: libFuzzer targets and their corpus replay.
#
#   make fuzz                  build-fuzz/fuzz_proto (clang, fuzzer+ASan+UBSan)
#   make fuzz-run FUZZ_TIME=N  fuzz N seconds on a copy of each corpus; a crash
#                              fails, its input lands in build-fuzz/artifacts/
#   make fuzz-replay           replay the committed corpora with the gcc build
#   make fuzz-seeds            regenerate tests/fuzz/corpus/proto/ seeds
#
# $(O)/tests/fuzz_<name>_replay links a target with replay.c instead of
# libFuzzer; tests/run-all.sh runs each on tests/fuzz/corpus/<name>/.
# A crash found by fuzzing is fixed, then its input is committed to the corpus.

FUZZ_O := build-fuzz
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer $(WARN) -D_GNU_SOURCE \
	-I. -MMD -MP
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OPTS := -timeout=10 -rss_limit_mb=2048 -max_len=140000 -print_final_stats=1
FUZZ_RUN_TARGET := fuzz-run

FUZZ_PROTO_OBJS := $(PROTO_SRCS:%.c=$(FUZZ_O)/%.o) $(BASE_SRCS:%.c=$(FUZZ_O)/%.o)

# Every object of a fuzz target, from any folder, with that folder's flags.
$(FUZZ_O)/%.o: %.c
	$(quiet) FUZZCC $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
		$(CFLAGS_$(firstword $(subst /, ,$<))) -c -o $@ $<

$(FUZZ_O)/fuzz_proto: $(FUZZ_O)/tests/fuzz/fuzz_proto.o $(FUZZ_PROTO_OBJS)
	$(quiet) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -lmsgpackc -lzstd

fuzz: $(FUZZ_O)/fuzz_proto

fuzz-run: fuzz
	@mkdir -p $(FUZZ_O)/corpus/proto $(FUZZ_O)/artifacts
	$(Q)cp tests/fuzz/corpus/proto/* $(FUZZ_O)/corpus/proto/
	$(Q)$(FUZZ_O)/fuzz_proto $(FUZZ_OPTS) -max_total_time=$(FUZZ_TIME) \
		-artifact_prefix=$(FUZZ_O)/artifacts/ $(FUZZ_O)/corpus/proto

# The same target under the normal compiler and flags, replaying files.
$(O)/tests/fuzz_proto_replay: $(OBJ)/tests/fuzz/fuzz_proto.o $(OBJ)/tests/fuzz/replay.o $(LIBPROTO) \
		$(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PROTO_LINK)

FUZZ_REPLAY_BINS += $(O)/tests/fuzz_proto_replay

fuzz-replay: $(FUZZ_REPLAY_BINS)
	$(Q)for b in $(FUZZ_REPLAY_BINS); do \
		n=$$(basename $$b _replay); n=$${n#fuzz_}; \
		$$b tests/fuzz/corpus/$$n || exit 1; \
	done

$(O)/tests/gen_proto_seeds: $(OBJ)/tests/fuzz/gen_proto_seeds.o $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(PROTO_LINK)

fuzz-seeds: $(O)/tests/gen_proto_seeds
	@mkdir -p tests/fuzz/corpus/proto
	$(Q)$< tests/fuzz/corpus/proto

.PHONY: fuzz-replay fuzz-seeds
CLEAN_EXTRA += $(FUZZ_O)
-include $(shell find $(FUZZ_O) -name '*.d' 2>/dev/null)
