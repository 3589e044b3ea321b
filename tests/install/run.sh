#!/bin/sh
# Installs mproc from the build tree into a temporary prefix (the install step of
# `make install PREFIX=<prefix>`: `cmake --install <build> --prefix <prefix>`), then
# builds and runs small programs against it exactly as README.md ("Using it from
# your program") says: pkg-config with PKG_CONFIG_PATH and an rpath, a static link
# (whose private dependencies, -lpthread -lrt, pkg-config --static lists),
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
pcdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n 1) # <prefix>/lib/pkgconfig (lib64 on some systems)

if command -v pkg-config >/dev/null 2>&1; then
    # README: a prefix pkg-config does not search by itself needs PKG_CONFIG_PATH ...
    export PKG_CONFIG_PATH="$pcdir"
    # ... and the program an rpath (or LD_LIBRARY_PATH at run time) to load libmproc.so.0.
    # shellcheck disable=SC2046
    cc -o "$tmp/pc_consumer" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs mproc) \
        -Wl,-rpath,"$(pkg-config --variable=libdir mproc)"
    "$tmp/pc_consumer"
    # README: a static link needs neither (the listener and handshake need no libcrypto).
    for app in consumer consumer_net; do
        # shellcheck disable=SC2046
        cc -o "$tmp/static_$app" "$src/tests/install/$app.c" $(pkg-config --cflags mproc) \
            "$(pkg-config --variable=libdir mproc)/libmproc.a" \
            $(pkg-config --static --libs mproc | sed 's/-lmproc//')
        if readelf -d "$tmp/static_$app" 2>/dev/null | grep -q libmproc; then
            echo "static_$app still needs libmproc.so" >&2
            exit 1
        fi
        "$tmp/static_$app"
    done
else
    echo "pkg-config not installed: checking mproc.pc by hand"
    grep -q "^Libs: -L\${libdir} -lmproc" "$pcdir/mproc.pc"
    cc -o "$tmp/pc_consumer" "$src/tests/install/consumer.c" -I"$prefix/include" \
        -L"${pcdir%/pkgconfig}" -lmproc -Wl,-rpath,"${pcdir%/pkgconfig}"
    "$tmp/pc_consumer"
fi

cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_net_static"
