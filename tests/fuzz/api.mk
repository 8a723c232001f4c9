# tests/fuzz/api.mk - libFuzzer targets of sbxd's parsers of untrusted data:
#   fuzz_api_create  JSON bodies of create / update (sbxd/api/api_req.c)
#   fuzz_api_route   URL paths, names, X-Api-Key and Host headers, --listen
#   fuzz_api_config  the config file (sbxd/config.c)
# Included from tests/module.mk after fuzz.mk (whose $(FUZZ_O)/%.o rule
# builds the objects). Adds to `make fuzz` / `make fuzz-run` (each target
# fuzzes FUZZ_API_TIME seconds, a third of FUZZ_TIME by default) and to the
# corpus replay of `make unit` (tests/fuzz/corpus/api_*/).
FUZZ_API_TARGETS := api_create api_route api_config
FUZZ_API_SRCS := sbxd/api/api_req.c sbxd/config.c $(BASE_SRCS)
FUZZ_API_TIME ?= $(shell expr $(FUZZ_TIME) / 3 + 1)

$(FUZZ_O)/fuzz_api_%: $(FUZZ_O)/tests/fuzz/fuzz_api_%.o $(FUZZ_API_SRCS:%.c=$(FUZZ_O)/%.o)
	$(quiet) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(SBXD_LIBS)

fuzz: $(FUZZ_API_TARGETS:%=$(FUZZ_O)/fuzz_%)

fuzz-run: fuzz-run-api
fuzz-run-api: $(FUZZ_API_TARGETS:%=$(FUZZ_O)/fuzz_%)
	@mkdir -p $(FUZZ_O)/artifacts
	$(Q)for t in $(FUZZ_API_TARGETS); do \
		mkdir -p $(FUZZ_O)/corpus/$$t && cp tests/fuzz/corpus/$$t/* $(FUZZ_O)/corpus/$$t/ && \
		$(FUZZ_O)/fuzz_$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_API_TIME) \
			-artifact_prefix=$(FUZZ_O)/artifacts/ $(FUZZ_O)/corpus/$$t || exit 1; \
	done

# The same targets under the normal compiler, replaying the corpus.
$(O)/tests/fuzz_api_%_replay: $(OBJ)/tests/fuzz/fuzz_api_%.o $(OBJ)/tests/fuzz/replay.o \
		$(FUZZ_API_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(SBXD_LIBS)

FUZZ_REPLAY_BINS += $(FUZZ_API_TARGETS:%=$(O)/tests/fuzz_%_replay)
.PHONY: fuzz-run-api
