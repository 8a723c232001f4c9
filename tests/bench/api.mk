# tests/bench/api.mk: `make bench` also measures sbxd's API through the
# official langsmith client (tests/bench/bench_api.sh + bench_api.js: cold
# create -> first run, run("true") round trip, 256 MiB upload/download, 10
# concurrent creates). $(O)/tests/bench_api is a two-line wrapper that
# carries $(O) into the script, so bench.mk's loop over BENCH_BINS runs it.
BENCH_API := $(O)/tests/bench_api

$(BENCH_API): tests/bench/api.mk
	$(quiet) GEN $@
	@mkdir -p $(dir $@)
	$(Q)printf '#!/bin/sh\nO=%s exec %s/tests/bench/bench_api.sh "$$@"\n' '$(O)' '$(CURDIR)' >$@
	$(Q)chmod +x $@

BENCH_BINS += $(BENCH_API)

.PHONY: bench-api
bench-api: $(BENCH_API)
	$(Q)$(MAKE) --no-print-directory all image
	$(Q)$(BENCH_API)
