# tests/fuzz/dp.mk - libFuzzer targets of the data plane's parsers of
# untrusted data (sbxd/dataplane/parse/):
#   fuzz_dp_multipart  upload bodies, split anywhere (dp_multipart.c)
#   fuzz_dp_wsmsg      WebSocket frames, POST /execute, /glob, /grep bodies
#   fuzz_dp_text       Range, If-None-Match, glob patterns, UTF-8 chunking
# Included from tests/module.mk after fuzz.mk (whose $(FUZZ_O)/%.o rule
# builds the objects). Adds to `make fuzz` / `make fuzz-run` (FUZZ_DP_TIME
# seconds each) and to the corpus replay of `make unit`
# (tests/fuzz/corpus/dp_*/).
FUZZ_DP_TARGETS := dp_multipart dp_wsmsg dp_text
FUZZ_DP_SRCS := $(DP_PURE_SRCS) $(BASE_SRCS)
FUZZ_DP_TIME ?= $(shell expr $(FUZZ_TIME) / 3 + 1)

$(FUZZ_O)/fuzz_dp_%: $(FUZZ_O)/tests/fuzz/fuzz_dp_%.o $(FUZZ_DP_SRCS:%.c=$(FUZZ_O)/%.o)
	$(quiet) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(call pc_libs,jansson)

fuzz: $(FUZZ_DP_TARGETS:%=$(FUZZ_O)/fuzz_%)

fuzz-run: fuzz-run-dp
fuzz-run-dp: $(FUZZ_DP_TARGETS:%=$(FUZZ_O)/fuzz_%)
	@mkdir -p $(FUZZ_O)/artifacts
	$(Q)for t in $(FUZZ_DP_TARGETS); do \
		mkdir -p $(FUZZ_O)/corpus/$$t && cp tests/fuzz/corpus/$$t/* $(FUZZ_O)/corpus/$$t/ && \
		$(FUZZ_O)/fuzz_$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_DP_TIME) \
			-artifact_prefix=$(FUZZ_O)/artifacts/ $(FUZZ_O)/corpus/$$t || exit 1; \
	done

# The same targets under the normal compiler, replaying the corpus.
$(O)/tests/fuzz_dp_%_replay: $(OBJ)/tests/fuzz/fuzz_dp_%.o $(OBJ)/tests/fuzz/replay.o \
		$(FUZZ_DP_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(call pc_libs,jansson)

FUZZ_REPLAY_BINS += $(FUZZ_DP_TARGETS:%=$(O)/tests/fuzz_%_replay)
.PHONY: fuzz-run-dp
