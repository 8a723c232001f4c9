# tests/: unit suites are added by each component's module.mk (UNIT_BINS);
# fuzz targets and the runners live here.
unit: all $(UNIT_BINS)
	$(Q)tests/run-all.sh --unit-only
