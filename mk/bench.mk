# mk/bench.mk - `make bench`: preforkd side by side with nginx and h2o
# (bench/run.sh; method and results: docs/performance.md). Builds the
# normal optimized build first. Every BENCH_* variable given on the command
# line or in the environment goes to the script, e.g.
#   make bench BENCH_RUNS=5 BENCH_DURATION=10 BENCH_WORKERS=1
# Results: $(BUILD)/bench/results.txt.

.PHONY: bench

ifeq ($(SANITIZE),1)
bench:
	@echo "make bench measures the normal build: run it without SANITIZE=1" >&2
	@exit 2
else
bench: all
	$(Q)env $(foreach v,$(filter BENCH_%,$(.VARIABLES)),$(v)='$($(v))') \
	  PREFORKD_BIN=$(abspath $(BUILD)/preforkd) \
	  PREFORKD_APPS=$(abspath $(BUILD)/apps) \
	  bash bench/run.sh
endif
