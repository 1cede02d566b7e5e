# Thin wrapper: `make run` and `make test` do everything on a fresh Debian.
#   make deps   install missing Debian packages
#   make build  configure + build (build/)
#   make test   build + run every test, then again under ASan+UBSan
#               (build-asan/), the concurrency tests under TSan (build-tsan/),
#               and the core tests with the portable ucontext switch
#   make run    build + start asyncd in the foreground with conf/asyncd.json
#   make bench  build + run the micro benchmarks (bench/README.md)
#   make bench-http  asyncd+http against nginx with wrk (bench/http/run.sh)

PKGS := cmake gcc make pkg-config libev-dev libjansson-dev libcmocka-dev curl python3 groff-base logrotate python3-websockets prometheus libssl-dev openssl testssl.sh systemd haproxy golang-go
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JOBS := $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: deps build build-asan build-tsan build-ucontext test test-release test-asan test-tsan test-ucontext test-fuzz run bench bench-http clean
FUZZ_SECONDS ?= 30

deps:
	@missing=""; \
	for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASYNC_SANITIZE=address -DASYNC_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS)

build-ucontext: deps
	cmake -S . -B build-ucontext -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_CONTEXT=ucontext -DASYNC_BUILD_BENCH=OFF
	cmake --build build-ucontext -j $(JOBS)

build-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_SANITIZE=thread -DASYNC_BUILD_BENCH=OFF
	cmake --build build-tsan -j $(JOBS)

test-release: build
	ctest --test-dir build --output-on-failure -j 2

test-asan: build-asan
	ctest --test-dir build-asan --output-on-failure -j 2

# TSan needs a fixed address layout on kernels with 32-bit mmap randomisation.
test-tsan: build-tsan
	setarch $$(uname -m) -R ctest --test-dir build-tsan --output-on-failure -L concurrency

# The portable stack switch, as other processors would use it.
test-ucontext: build-ucontext
	ctest --test-dir build-ucontext --output-on-failure -j 2 -R '^(context|sched|reactor|cancel|channel)$$'

# The HTTP parser under libFuzzer (with ASan+UBSan), for a bounded time,
# when clang and its fuzzer runtime are present: the CMake option
# ASYNC_BUILD_FUZZ in a clang build of its own.
test-fuzz:
	@if ! command -v clang >/dev/null; then echo "test-fuzz: clang not found, skipped"; exit 0; fi; \
	mkdir -p build-fuzz; \
	if ! printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	     'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }' | \
	     clang -fsanitize=fuzzer -x c - -o build-fuzz/probe; then \
	  echo "test-fuzz: clang cannot build a libFuzzer target here, skipped"; exit 0; fi; \
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DASYNC_BUILD_FUZZ=ON -DASYNC_BUILD_TESTS=OFF -DASYNC_BUILD_BENCH=OFF && \
	cmake --build build-fuzz --target fuzz_http_parse -j $(JOBS) && \
	rm -rf build-fuzz/corpus && cp -r tests/fuzz/corpus build-fuzz/corpus && \
	./build-fuzz/tests/fuzz/fuzz_http_parse -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus

test: test-release test-asan test-tsan test-ucontext test-fuzz

run: build
	./build/asyncd --config conf/asyncd.json

bench: build
	./bench/run.sh

bench-http: build
	./bench/http/run.sh

clean:
	rm -rf build build-asan build-tsan build-ucontext build-fuzz
