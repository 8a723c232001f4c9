# tests/: unit suites (tests/unit/unit.mk, UNIT_BINS), suites that boot
# VMs (tests/integration/integration.mk, VM_TEST_BINS), fuzz targets,
# benchmarks, the conformance suite, and the runner tests/run-all.sh.
#
# Test code may use any header of the tree (white-box suites include the
# private ones); it builds with every library's flags.
# test binaries land in $(O)/tests
$(shell mkdir -p $(O)/tests)
CHECK_PKGS := check
CFLAGS_tests := $(CFLAGS_sbxd) $(CFLAGS_tools) $(CFLAGS_protocol) \
	$(call pc_cflags,$(CHECK_PKGS) libcurl openssl)
CHECK_LIBS := $(call pc_libs,$(CHECK_PKGS))

include tests/unit/unit.mk
include tests/fuzz/fuzz.mk
include tests/fuzz/api.mk
include tests/fuzz/dp.mk
include tests/fuzz/snap.mk
include tests/integration/integration.mk
include tests/bench/bench.mk
include tests/bench/api.mk
include tests/conformance/conformance.mk

TEST_ENV = O=$(O) UNIT_BINS="$(UNIT_BINS)" VM_TEST_BINS="$(VM_TEST_BINS)" \
	FUZZ_REPLAY_BINS="$(FUZZ_REPLAY_BINS)" EXTRA_TEST_STEPS="$(EXTRA_TEST_STEPS)" \
	FUZZ_RUN_TARGET="$(FUZZ_RUN_TARGET)" FUZZ_TIME=$(FUZZ_TIME) MAKE="$(MAKE)"

test-bins: all $(UNIT_BINS) $(VM_TEST_BINS) $(FUZZ_REPLAY_BINS)

unit: test-bins
	$(Q)$(TEST_ENV) tests/run-all.sh --unit-only

check-all: test-bins
	$(Q)$(TEST_ENV) tests/run-all.sh
