#!/bin/sh
# Runs every example in name order, each under a banner taken from the first line
# of its source (a "/* NN_name.c — what it shows */" comment), with examples/ as
# the working directory so examples can read the files shipped beside them.
# An example with a "// PROGRAM <name>" line is built as <name>; one with a
# "// DEMO <command>" line is run by that shell command instead (with $bin set), or
# not at all when the command starts with "(" (another example's demo runs it).
# Fails if any example fails. Usage: run_demo.sh <build>/examples
bin=$(cd "${1:-build/examples}" && pwd) || exit 1
cd "$(dirname "$0")" || exit 1
status=0
for c in *.c; do
    name=${c%.c}
    printf '\n=== %s\n' "$(head -n 1 "$c" | sed -e 's|^/\* *||' -e 's| *\*/$||')"
    prog=$(sed -n 's|^// PROGRAM \([a-z_]*\)$|\1|p' "$c")
    demo=$(sed -n 's|^// DEMO ||p' "$c")
    case $demo in
    '('*) echo "$demo"; continue ;;
    ?*) if ! bin=$bin eval "$demo \"\$bin\""; then
            printf '!!! %s failed\n' "$name"
            status=1
        fi
        continue ;;
    esac
    if ! "$bin/${prog:-$name}"; then
        printf '!!! %s failed\n' "$name"
        status=1
    fi
done
exit $status
