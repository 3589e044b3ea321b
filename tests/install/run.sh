#!/bin/sh
# Installs mproc from the build tree into a temporary prefix, then builds and runs
# a small program against it twice: with pkg-config and with find_package(mproc).
# Usage: run.sh <build dir> <source dir>
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -n 1)
libdir=${libdir%/pkgconfig}
export LD_LIBRARY_PATH="$libdir"

if command -v pkg-config >/dev/null 2>&1; then
    export PKG_CONFIG_PATH="$libdir/pkgconfig"
    # shellcheck disable=SC2046
    cc -o "$tmp/pc_consumer" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs mproc)
    "$tmp/pc_consumer"
else
    echo "pkg-config not installed: checking mproc.pc by hand"
    grep -q "^Libs: -L\${libdir} -lmproc" "$libdir/pkgconfig/mproc.pc"
    cc -o "$tmp/pc_consumer" "$src/tests/install/consumer.c" -I"$tmp/prefix/include" -L"$libdir" -lmproc
    "$tmp/pc_consumer"
fi

# A static link needs mproc's private dependencies (libcrypto): pkg-config --static
# lists them.
if command -v pkg-config >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    cc -o "$tmp/pc_static" "$src/tests/install/consumer_net.c" $(pkg-config --cflags mproc) \
        "$libdir/libmproc.a" $(pkg-config --static --libs mproc | sed 's/-lmproc//')
    "$tmp/pc_static"
fi

cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_net_static"
