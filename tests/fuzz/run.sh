#!/bin/sh
# make fuzz (and .ci/run): builds the library's sources with clang's libFuzzer, ASan
# and UBSan, then fuzzes each tests/fuzz/fuzz_*.c for FUZZ_SECONDS (default 60),
# starting from the committed seeds in tests/fuzz/seeds/<target>/ (read, never
# written: new inputs go to $FUZZ_BUILD/corpus-<target>/). Installs clang and its
# runtime (Debian: clang, libclang-rt-14-dev) when they are missing.
#
# Fails (non-zero exit) when any target crashes, leaks, trips a sanitizer, runs
# out of memory (FUZZ_RSS_MB, default 2048) or takes more than 10 s on one input;
# the input that did it is saved as $FUZZ_BUILD/<target>-crash-... (leak-, timeout-,
# oom-), and belongs, once fixed, in tests/fuzz/seeds/<target>/ as a regression
# seed. Prints the executions and the corpus size of every target at the end.
# FUZZ_TARGETS="fuzz_a fuzz_b" limits the run to those targets.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD:-$src/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
rss=${FUZZ_RSS_MB:-2048}
if ! command -v clang >/dev/null 2>&1 || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
        clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    echo "installing clang and libFuzzer (Debian packages clang, libclang-rt-14-dev)"
    apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
failed=""
for f in "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    if [ -n "${FUZZ_TARGETS:-}" ] && ! echo " $FUZZ_TARGETS " | grep -q " $name "; then
        continue
    fi
    echo "building $name"
    clang -std=c11 -D_GNU_SOURCE -g -O1 -fvisibility=hidden -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -I"$src/include" -iquote "$src/src" -o "$out/$name" \
        "$f" "$src"/src/*/*.c -lpthread -lm
    mkdir -p "$out/corpus-$name"
    seeds="$src/tests/fuzz/seeds/$name"
    log="$out/$name.log"
    echo "fuzzing $name for $seconds s"
    rc=0
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$out/$name" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb="$rss" \
        -print_final_stats=1 -artifact_prefix="$out/$name-" "$out/corpus-$name" \
        $([ -d "$seeds" ] && echo "$seeds") >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(ls "$out/corpus-$name" | wc -l)
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$log"
        echo "$name: FAILED (exit $rc) after ${execs:-?} executions; input saved as:"
        ls "$out/$name"-* 2>/dev/null || true
        failed="$failed $name"
        echo "$name: FAILED (exit $rc)" >>"$summary"
    else
        tail -n 3 "$log"
        echo "$name: ${execs:-?} executions in $seconds s, corpus $corpus inputs" >>"$summary"
    fi
done
echo "fuzz summary:"
cat "$summary"
if [ -n "$failed" ]; then
    echo "fuzz targets failed:$failed"
    exit 1
fi
