# tests/fuzz/api.mk - libFuzzer targets of sbxd's parsers of untrusted data:
#   fuzz_api_create  JSON bodies of create / update (api_req.c)
#   fuzz_api_route   URL paths, names, X-Api-Key and Host headers, --listen
#   fuzz_api_config  the config file (sbxd_config.c)
# Included from tests/module.mk. Adds to `make fuzz` / `make fuzz-run` (each
# target fuzzes FUZZ_API_TIME seconds, a third of FUZZ_TIME by default) and
# to the corpus replay of `make unit` (tests/fuzz/corpus/api_*/).
FUZZ_API_TARGETS := api_create api_route api_config
FUZZ_API_OBJS := $(FUZZ_O)/host/api_req.o $(FUZZ_O)/host/sbxd_config.o
FUZZ_API_TIME ?= $(shell expr $(FUZZ_TIME) / 3 + 1)

$(FUZZ_O)/host/%.o: host/%.c
	$(quiet) FUZZCC $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(SBXD_CFLAGS) \
		-c -o $@ $<

$(FUZZ_O)/fuzz_api_%.o: tests/fuzz/fuzz_api_%.c
	$(quiet) FUZZCC $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Ihost $(SBXD_CFLAGS) \
		-c -o $@ $<

$(FUZZ_O)/fuzz_api_%: $(FUZZ_O)/fuzz_api_%.o $(FUZZ_API_OBJS)
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
$(O)/tests/fuzz/fuzz_api_%.o: CFLAGS += -Ihost $(SBXD_CFLAGS)
$(O)/tests/fuzz_api_%_replay: $(O)/tests/fuzz/fuzz_api_%.o $(O)/tests/fuzz/replay.o $(LIBSBXD)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBSBXD) $(SBXD_LIBS)

FUZZ_REPLAY_BINS += $(FUZZ_API_TARGETS:%=$(O)/tests/fuzz_%_replay)
.PHONY: fuzz-run-api
-include $(wildcard $(FUZZ_O)/host/*.d $(FUZZ_O)/fuzz_api_*.d)
