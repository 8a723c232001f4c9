# tests/conformance: the sbxd conformance suite, driven by the official
# langsmith@0.12.0 sandbox client (Node). `make test` runs it as one step of
# tests/run-all.sh (EXTRA_TEST_STEPS); its checks are counted from the
# Check-style line the script ends with. See docs/conformance.md.
#   make conformance                   just the suite (after all and image)
#   make conformance CONFORMANCE_FILTER=REGEX   only the tests whose name matches
#   make conformance-deps              just the npm install into $(O)/conformance
EXTRA_TEST_STEPS += tests/conformance/conformance.sh

.PHONY: conformance conformance-deps
conformance-deps:
	$(Q)tests/conformance/npm-install.sh $(O)/conformance

conformance: all
	$(Q)$(MAKE) --no-print-directory image
	$(Q)O=$(O) CONFORMANCE_FILTER="$(CONFORMANCE_FILTER)" tests/conformance/conformance.sh
