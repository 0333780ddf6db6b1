#!/usr/bin/env bash
# Log lines per minute of `bin/run`, as an operator sees them in the terminal.
# Usage: bench/log_rate.sh [SECONDS] [WARMUP]   (default 150 and 30)
#   DEMO=0 bench/log_rate.sh    measures the console alone (idle).
# Runs bin/run on a throw-away var dir (embedded defaults) and a free port,
# counts the lines printed after WARMUP seconds, per process, then stops it
# with Ctrl-C (SIGINT to its process group).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-150}
warmup=${2:-30}
var=$(mktemp -d /tmp/log-rate.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$var/run.log
env -u DATABASE_URL -u REDIS_URL CONSOLE_VAR_DIR="$var" WEB_PORT="$port" ADMIN_PASSWORD=log-rate-only \
  setsid bin/run >"$log" 2>&1 &
pid=$!
trap 'kill -INT -- -$pid 2>/dev/null || true' EXIT
sleep "$warmup"
start=$(wc -l <"$log")
sleep "$seconds"
end=$(wc -l <"$log")
kill -INT -- -"$pid" 2>/dev/null || true
wait "$pid" || true
trap - EXIT
echo "DEMO=${DEMO:-1}: $((end - start)) lines in ${seconds} s after a ${warmup} s warm-up:" \
  "$(python3 -c "print(round(($end - $start) * 60 / $seconds, 1))") lines/min"
echo "per process (lines/min):"
sed -n "$((start + 1)),${end}p" "$log" | awk '{print $2}' | sort | uniq -c | sort -rn |
  awk -v s="$seconds" '{printf "  %-10s %7.1f\n", $2, $1 * 60 / s}'
echo "sample:"
sed -n "$((start + 1)),${end}p" "$log" | head -n 12 | cut -c1-160
echo "full log: $log"
