#!/bin/sh
# manager_demo.sh <bin> — run by run_demo.sh for 72_manager_master: the
# mproc-manager program serves the two tutorial queues (no code), the C
# manager_master puts 30 tasks, and two C task_workers and (where python3 is
# present) the tutorial's python3 task_worker.py share them: each worker makes ten
# get(timeout=1) attempts, so with the tasks queued first every worker takes ten
# (without python3, the master reports the ten nobody took).
bin=$1
server=$bin/../tools/mproc-manager
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 5123)
addrfile=$(mktemp -u)
MPROC_AUTHKEY=abc "$server" --listen "127.0.0.1:$port" --address-file "$addrfile" \
    --queue get_task_queue --queue get_result_queue &
server_pid=$!
i=0
while [ ! -s "$addrfile" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
echo "--- mproc-manager on port $port: C manager_master, 2 C task_workers, python3 task_worker.py"
status=0
out=$(mktemp)
"$bin/manager_master" "$port" 30 &
master=$!
sleep 1 # the tasks are queued before the workers start
"$bin/task_worker" "$port" > "$out.w1" 2>&1 &
w1=$!
"$bin/task_worker" "$port" > "$out.w2" 2>&1 &
w2=$!
if command -v python3 >/dev/null 2>&1; then
    python3 task_worker.py "$port" > "$out.w3" 2>&1 &
    w3=$!
fi
wait $w1 || status=1
wait $w2 || status=1
[ -n "$w3" ] && { wait $w3 || status=1; }
wait $master || status=1
for f in "$out.w1" "$out.w2" "$out.w3"; do
    [ -f "$f" ] || continue
    printf '%s did %s tasks\n' "$(case $f in *w3) echo 'python3 task_worker.py' ;; *) echo 'C task_worker' ;; esac)" "$(grep -c '^run task' "$f")"
done
wait $server_pid || status=1
rm -f "$out" "$out.w1" "$out.w2" "$out.w3" "$addrfile"
exit $status
