#!/bin/sh
# task_demo.sh <bin> — the distributed-process tutorial, run by run_demo.sh: the C
# task_master and the C task_worker together, then the C task_worker against the
# tutorial's own python3 master (task_master.py). Each run takes a free port.
bin=$1
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
status=0
out=$(mktemp)
port=$(free_port)
echo "--- C task_master and C task_worker on port $port"
"$bin/task_master" "$port" > "$out" 2>&1 &
master=$!
wait_port "$port" && "$bin/task_worker" "$port" || status=1
wait $master || status=1
cat "$out"
if command -v python3 >/dev/null 2>&1; then
    port=$(free_port)
    echo "--- python3 task_master.py and C task_worker on port $port"
    python3 task_master.py "$port" > "$out" 2>&1 &
    master=$!
    wait_port "$port" && "$bin/task_worker" "$port" || status=1
    wait $master || status=1
    cat "$out"
fi
rm -f "$out"
exit $status
