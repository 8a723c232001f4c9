# tests/: unit suites are added by each component's module.mk (UNIT_BINS),
# VM suites likewise (VM_TEST_BINS); fuzz targets and the runners live here.
-include tests/fuzz/fuzz.mk
-include tests/fuzz/api.mk
-include tests/fuzz/dp.mk
-include tests/fuzz/snap.mk
-include tests/integration/integration.mk
-include tests/bench/bench.mk
-include tests/conformance/conformance.mk
-include tests/bench/api.mk

TEST_ENV = O=$(O) UNIT_BINS="$(UNIT_BINS)" VM_TEST_BINS="$(VM_TEST_BINS)" \
	FUZZ_REPLAY_BINS="$(FUZZ_REPLAY_BINS)" EXTRA_TEST_STEPS="$(EXTRA_TEST_STEPS)" \
	FUZZ_RUN_TARGET="$(FUZZ_RUN_TARGET)" FUZZ_TIME=$(FUZZ_TIME) MAKE="$(MAKE)"

test-bins: all $(UNIT_BINS) $(VM_TEST_BINS) $(FUZZ_REPLAY_BINS)

unit: test-bins
	$(Q)$(TEST_ENV) tests/run-all.sh --unit-only

check-all: test-bins
	$(Q)$(TEST_ENV) tests/run-all.sh
