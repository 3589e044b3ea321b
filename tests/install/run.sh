#!/bin/sh
# Installs mproc from the build tree into a temporary prefix (the install step of
# `make install PREFIX=<prefix>`: `cmake --install <build> --prefix <prefix>`), then
# builds and runs a small program against it exactly as README.md ("Using it from
# your program") says: pkg-config with PKG_CONFIG_PATH and an rpath, static linking,
# and find_package(mproc). LD_LIBRARY_PATH is never set: a program that builds but
# cannot find libmproc.so.0 at run time fails the test.
# Usage: run.sh <build dir> <source dir>
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH PKG_CONFIG_PATH || true
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
app=$src/tests/install/consumer.c
pcdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n 1) # <prefix>/lib/pkgconfig (lib64 on some systems)

if command -v pkg-config >/dev/null 2>&1; then
    # README: a prefix pkg-config does not search by itself needs PKG_CONFIG_PATH ...
    export PKG_CONFIG_PATH="$pcdir"
    # ... and the program an rpath (or LD_LIBRARY_PATH at run time) to load libmproc.so.0.
    # shellcheck disable=SC2046
    cc -o "$tmp/pc_consumer" "$app" $(pkg-config --cflags --libs mproc) \
        -Wl,-rpath,"$(pkg-config --variable=libdir mproc)"
    "$tmp/pc_consumer"
    # README: static linking needs neither.
    # shellcheck disable=SC2046
    cc -o "$tmp/static_consumer" "$app" $(pkg-config --cflags mproc) \
        "$(pkg-config --variable=libdir mproc)/libmproc.a" -lpthread -lrt
    if readelf -d "$tmp/static_consumer" 2>/dev/null | grep -q libmproc; then
        echo "static_consumer still needs libmproc.so" >&2
        exit 1
    fi
    "$tmp/static_consumer"
else
    echo "pkg-config not installed: checking mproc.pc by hand"
    grep -q "^Libs: -L\${libdir} -lmproc" "$pcdir/mproc.pc"
    cc -o "$tmp/pc_consumer" "$app" -I"$prefix/include" -L"${pcdir%/pkgconfig}" -lmproc \
        -Wl,-rpath,"${pcdir%/pkgconfig}"
    "$tmp/pc_consumer"
fi

cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"
