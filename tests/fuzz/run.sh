#!/bin/sh
# make fuzz: builds the library's sources with clang's libFuzzer, ASan and UBSan,
# then fuzzes each tests/fuzz/fuzz_*.c for FUZZ_SECONDS (default 60), starting from
# the seeds in tests/fuzz/seeds/<target>/. Installs clang and its runtime (Debian:
# clang, libclang-rt-14-dev) when they are missing.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD:-$src/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
if ! command -v clang >/dev/null 2>&1 || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
        clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    echo "installing clang and libFuzzer (Debian packages clang, libclang-rt-14-dev)"
    apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
mkdir -p "$out"
for f in "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    clang -std=c11 -D_GNU_SOURCE -g -O1 -fvisibility=hidden -fsanitize=fuzzer,address,undefined \
        -I"$src/include" -iquote "$src/src" -o "$out/$name" "$f" "$src"/src/*/*.c -lpthread -lcrypto -lm
    mkdir -p "$out/corpus-$name"
    seeds="$src/tests/fuzz/seeds/$name"
    echo "fuzzing $name for $seconds s"
    "$out/$name" -max_total_time="$seconds" -max_len=65536 -timeout=10 "$out/corpus-$name" \
        $( [ -d "$seeds" ] && echo "$seeds" ) 2>&1 | tail -n 3
done
