#!/bin/sh
# The format check run by `make check`: every C file of the repository is as
# .clang-format lays it out (clang-format --dry-run --Werror prints what differs).
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
    echo "SKIP: clang-format is not installed"
    exit 77
fi
git ls-files '*.c' '*.h' 2>/dev/null | xargs clang-format --dry-run --Werror
echo "format: every C file matches .clang-format"
