# The front door. Every target works from a clean clone; CMake does the building.
#   make            build (build/)
#   make check      build and run every test through CTest
#   make demo       build and run the examples
#   make bench      side-by-side benchmarks: mproc, CPython, raw syscalls (CASES="a b" for some);
#                   SWEEP=1 also runs the sweeps and charts them into docs/performance.md
#                   (installs Debian's gnuplot-nox when gnuplot is missing)
#   make sanitize   the tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-sanitize/)
#   make tsan       the tests under ThreadSanitizer (build-tsan/, clang; tests/tsan.supp)
#   make install    PREFIX=/usr/local by default
#   make fuzz       libFuzzer on the decoders of what peers send (FUZZ_SECONDS=60 each; clang)
BUILD    ?= build
SAN      ?= build-sanitize
TSAN     ?= build-tsan
PREFIX   ?= /usr/local
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
WERROR   ?= OFF
CASES    ?=
SWEEP    ?=
CMAKE_FLAGS ?=

.PHONY: all deps build check demo bench sanitize tsan install clean configure fuzz

all: build

# The library needs nothing beyond libc (the handshake's HMACs are src/net/digest.c,
# no libcrypto); kept as the hook the other targets depend on.
deps:
	@true

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@sh examples/run_demo.sh $(BUILD)/examples

bench: build
	python3 bench/run.py --build $(BUILD) $(CASES)
ifeq ($(SWEEP),1)
	@command -v gnuplot >/dev/null 2>&1 || { echo "installing gnuplot (Debian package gnuplot-nox)"; \
		apt-get update -qq && apt-get install -y -qq gnuplot-nox >/dev/null; }
	python3 bench/sweep.py --build $(BUILD)
endif

sanitize: deps
	@cmake -S . -B $(SAN) -DCMAKE_BUILD_TYPE=Debug -DMPROC_SANITIZE=ON -DMPROC_WERROR=$(WERROR) \
		-DMPROC_EXAMPLES=OFF -DMPROC_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(SAN) -j $(JOBS)
	cd $(SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# Tests not written for TSan skip themselves with a reason (SKIP_UNDER_TSAN in
# tests/harness.h); tests/tsan.supp lists each suppression with its reason.
# atexit_sleep_ms=0: TSan otherwise sleeps a second in every exiting process that
# had threads, and the tests fork thousands of children.
tsan: deps
	@if ! echo 'int main(void){return 0;}' | clang -x c -fsanitize=thread -o /dev/null - >/dev/null 2>&1; then \
		echo "installing clang and its sanitizer runtime (Debian packages clang, libclang-rt-14-dev)"; \
		apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; \
	fi
	@CC=clang cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DMPROC_TSAN=ON -DMPROC_WERROR=$(WERROR) \
		-DMPROC_EXAMPLES=OFF -DMPROC_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(TSAN) -j $(JOBS)
	cd $(TSAN) && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0:suppressions=$(CURDIR)/tests/tsan.supp" \
		ctest --output-on-failure -j $(JOBS)

fuzz:
	sh tests/fuzz/run.sh

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(SAN) $(TSAN) build-fuzz
