# pushpoll — the two commands a newcomer needs are `make run` and `make test`.
# Both install what is missing first (scripts/install-deps.sh).

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
VENV      ?= .venv
PY        := $(VENV)/bin/python
PRESET    := $(if $(CI),ci,default)
BUILD     := build/$(PRESET)
export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)

.PHONY: all deps build run test test-fast test-cpp test-tsan test-asan test-python bench bench-report stress clean help

all: build

help:
	@echo "make run      build and run the main job (load-test harness, default scenario)"
	@echo "make test     build and run every test: unit, stress, TSan, Python (installs deps)"
	@echo "make test-fast  core's unit tests only (seconds)"
	@echo "make bench    Google Benchmark suites (Release build)"
	@echo "make bench-report  regenerate docs/benchmarks.md from a fresh harness run"
	@echo "make stress   long stress and soak runs (also under TSan)"
	@echo "make test-asan  the suites under AddressSanitizer + UBSan"

deps:
	@scripts/install-deps.sh

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET)

# The main job: the load-test harness on its default scenario (about half a minute on 2 cores),
# ending with the side-by-side table of push-to-poll against the designs it replaces.
run: deps
	cmake --preset bench >/dev/null
	cmake --build --preset bench --target pushpoll_bench_harness
	build/bench/bench/harness/pushpoll-bench --scenario default

test: test-cpp test-tsan test-python
	@echo "make test: all suites passed"

test-cpp: build
	ctest --preset $(PRESET) -j$(JOBS)

# The fast tier only: core's unit tests (seconds), for the edit-compile-test loop.
test-fast: build
	ctest --preset $(PRESET) -j$(JOBS) -L unit

# The concurrency (stress) tests again under ThreadSanitizer, bounded in time. Overwrite-mode tests
# read bytes that may change under them by design (see docs/DESIGN.md) and are left out.
test-tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --preset tsan --timeout 600 -E Overwrite

test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan
	ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" ctest --preset asan

test-python: deps
	@if [ -f pyproject.toml ]; then scripts/test-python.sh; else echo "no Python package yet"; fi

bench: deps
	cmake --preset bench >/dev/null
	cmake --build --preset bench
	build/bench/bench/pushpoll_ring_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
	build/bench/bench/pushpoll_wake_bench

# Regenerates docs/benchmarks.md (tables and plots) from a fresh run. On a shared machine,
# REPORT_ARGS="--realtime --nice -10" (root) shields the run from other load.
bench-report: deps
	cmake --preset bench >/dev/null
	cmake --build --preset bench --target pushpoll_bench_harness
	$(PY) bench/report.py --bench build/bench/bench/harness/pushpoll-bench $(REPORT_ARGS)

stress: deps
	cmake --preset $(PRESET) >/dev/null && cmake --build --preset $(PRESET)
	PUSHPOLL_STRESS_SCALE=20 ctest --preset $(PRESET) -L stress --timeout 3600
	cmake --preset tsan >/dev/null && cmake --build --preset tsan
	PUSHPOLL_STRESS_SCALE=5 TSAN_OPTIONS="halt_on_error=1" \
	  ctest --preset tsan --timeout 3600 -E Overwrite

clean:
	rm -rf build build-* dist
