# Thin wrapper over CMake/CTest; the real build lives in CMakeLists.txt.
# Every target that builds first runs scripts/deps.sh (silent when nothing is missing).

PREFIX     ?= /usr/local
CTEST_ARGS ?=
BENCH_ARGS ?=
JOBS       := $(shell nproc)
CTEST      := ctest --output-on-failure -j2 $(CTEST_ARGS)
ASAN_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV   := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
SOAK_SECONDS ?= 300
# valgrind needs a build without sanitizers; -O1 keeps it fast and the stacks
# readable. Only the epoll backend: memcheck is slow, and the poller is not
# where memory is handled.
MEMCHECK_CFG := -DVX_MEMCHECK=ON -DVX_TEST_BACKENDS=epoll -DVX_TEST_TIMEOUT=900 \
                -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g"

MAKEFLAGS  += --no-print-directory

.PHONY: all build deps test run bench bench-http tsan memcheck soak fuzz install format clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
	cmake --build build -j$(JOBS)

# Every pass always runs (plain, which includes the 60 s soak; ASan/UBSan;
# valgrind memcheck on epoll), so one report shows all failures; the target
# fails if any did.
test: build
	@rc=0; \
	$(CTEST) --test-dir build || rc=1; \
	cmake -S . -B build-asan -DVX_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug && \
	cmake --build build-asan -j$(JOBS) || exit 1; \
	$(ASAN_ENV) $(CTEST) --test-dir build-asan || rc=1; \
	cmake -S . -B build-memcheck $(MEMCHECK_CFG) && \
	cmake --build build-memcheck -j$(JOBS) || exit 1; \
	$(CTEST) --test-dir build-memcheck -L memcheck || rc=1; \
	FUZZ_TOTAL_SECONDS=$${FUZZ_TOTAL_SECONDS:-45} bash tests/fuzz/run.sh || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$rc

run: build
	@echo "starting vx-http on port 8080 (Ctrl-C stops it); try:"
	@echo "  http://127.0.0.1:8080/static/index.html"
	@echo "  http://127.0.0.1:8080/plaintext   http://127.0.0.1:8080/json"
	@echo "  http://127.0.0.1:8080/baseline11?a=1&b=2   http://127.0.0.1:8080/pipeline"
	@echo "  http://127.0.0.1:8080/json/5?m=2   http://127.0.0.1:8080/delay/250"
	@echo "  http://127.0.0.1:8080/metrics"
	@echo "  curl -X POST --data-binary @FILE http://127.0.0.1:8080/upload"
	@exec build/bin/vx-http --port 8080 --root data/www --dataset data/dataset.json

bench: build
	bash bench/run.sh $(BENCH_ARGS)

bench-http: build
	bash bench/http.sh $(BENCH_ARGS)

# Only the multi-threaded tests (label "threads"); none yet is not a failure.
tsan: deps
	cmake -S . -B build-tsan -DVX_SANITIZE=thread
	cmake --build build-tsan -j$(JOBS)
	$(TSAN_ENV) $(CTEST) --test-dir build-tsan -L threads --no-tests=ignore

# The unit tests and the epoll integration tests under valgrind memcheck
# (tests/valgrind.sh: no error and no definite or indirect leak in any process).
memcheck: deps
	cmake -S . -B build-memcheck $(MEMCHECK_CFG)
	cmake --build build-memcheck -j$(JOBS)
	$(CTEST) --test-dir build-memcheck -L memcheck

# vx-http under vx-load's mix of clients for SOAK_SECONDS, watching its RSS
# and fds (scripts/soak.sh); make test runs the 60 s version (soak.60s).
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) VX_BIN=$(CURDIR)/build/bin bash scripts/soak.sh

# libFuzzer (clang) on every tests/fuzz target, FUZZ_SECONDS each (default
# 20; `make fuzz FUZZ_SECONDS=120`). `make test` gives them 45 s in all
# (FUZZ_TOTAL_SECONDS), and both its ctest passes replay the checked-in
# corpora (fuzz.<target>.replay).
fuzz: deps
	bash tests/fuzz/run.sh

install: build
	cmake --install build --prefix $(PREFIX)

format:
	find include src apps tests examples bench -type f \( -name '*.c' -o -name '*.h' \) \
		-print0 2>/dev/null | xargs -0 -r clang-format -i

clean:
	rm -rf build build-asan build-tsan build-memcheck
