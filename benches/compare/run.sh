#!/usr/bin/env bash
# Loopback load comparison: bare axum, sessio (memory, cookie, Redis stores,
# Redis with its client cache) and tower-sessions (memory, Redis) with
# identical handlers, loaded by wrk.
# BENCHMARKS.md explains the method and the numbers.
#
#   benches/compare/run.sh
#
# Environment (defaults in brackets):
#   PASSES [6]        passes; each runs every scenario on every configuration
#   SLICE [2s]        wrk duration of one measurement (after a 1 s warm-up)
#   CONNECTIONS [32]  wrk connections (one wrk thread)
#   SERVER_CPU [1]    core the server under test is pinned to
#   LOAD_CPU [0]      core wrk is pinned to
#   REDIS_CPU [0]     core redis-server is pinned to (the same for every configuration)
#   REDIS_COUNT [1000] requests per scenario when counting Redis commands and
#                     SQL statements
#   SCENARIOS         the scenarios the passes measure (default: untouched read
#                     rmw new); Redis commands and SQL statements are always
#                     counted for all four
#   CONFIGS           space-separated configurations (default: all but the SQL
#                     ones; add sessio-sqlite and sessio-postgres for those, a
#                     PostgreSQL cluster is then started on 127.0.0.1:16432,
#                     pinned with Redis)
#
# A scenario's configurations are measured one right after the other, in
# short slices, in an order rotated every pass; each pass gives one ratio per
# pair (a configuration against bare axum or tower-sessions, seconds apart).
# The report gives the median of those paired ratios and their spread (the
# lowest and highest pass), and judges each target on them: met when the
# whole spread is above it, missed when the whole spread is below it, and
# "not shown either way" when the target lies within the spread.
#
# Raw wrk output and the results go to target/compare/; the table is printed
# at the end and written to target/compare/table.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/target/compare"
PASSES=${PASSES:-6}
SLICE=${SLICE:-2s}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
REDIS_CPU=${REDIS_CPU:-0}
REDIS_COUNT=${REDIS_COUNT:-1000}
REDIS_PORT=16379
PORT=18080 # the first configuration's; the others follow it
HOST=127.0.0.1

# shellcheck source=benches/compare/lib.sh
. "$here/lib.sh"
install_missing wrk:wrk redis-server:redis-server redis-cli:redis-tools curl:curl
build_servers

CONFIGS=${CONFIGS:-bare sessio-memory sessio-cookie sessio-redis sessio-redis-cached ts-memory ts-memory-signed ts-redis}
ALL_SCENARIOS="untouched read rmw new"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}

rm -rf "$out"
mkdir -p "$out/raw"

# --- processes ---------------------------------------------------------------
declare -A pid=() port=() cookie=()
redis_pid=""
cleanup() {
  for c in "${!pid[@]}"; do
    kill "${pid[$c]}" 2>/dev/null && wait "${pid[$c]}" 2>/dev/null
  done
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  stop_postgres
  return 0
}
trap cleanup EXIT INT TERM

rcli() { redis-cli -h "$HOST" -p "$REDIS_PORT" "$@"; }

uses_redis() { case "$1" in *redis*) return 0 ;; *) return 1 ;; esac; }

start_redis() {
  taskset -c "$REDIS_CPU" redis-server --bind "$HOST" --port "$REDIS_PORT" \
    --save "" --appendonly no --protected-mode yes --loglevel warning \
    >"$out/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do
    rcli ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not start; see $out/redis.log" >&2
  exit 1
}

# Starts a configuration's server on its own port (all on the same core) and
# takes its session cookie.
start_server() {
  local config=$1
  REDIS_URL="redis://$HOST:$REDIS_PORT" DATABASE_URL="${pg_url:-}" \
    SQLITE_PATH="$out/sqlite-$config.sqlite3" \
    taskset -c "$SERVER_CPU" "$server" "$config" "${port[$config]}" \
    >>"${server_log:-$out/server.log}" 2>&1 &
  pid[$config]=$!
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://$HOST:${port[$config]}/"; then
      cookie[$config]=$(session_cookie "http://$HOST:${port[$config]}")
      return 0
    fi
    sleep 0.05
  done
  echo "server $config did not start; see $out/server.log" >&2
  exit 1
}

stop_server() {
  kill "${pid[$1]}" 2>/dev/null || true
  wait "${pid[$1]}" 2>/dev/null || true
  unset "pid[$1]"
}

# scenario -> "path cookie?"
path_of() { case "$1" in untouched) echo / ;; read) echo /read ;; *) echo /incr ;; esac; }
with_cookie() { case "$1" in read | rmw) return 0 ;; *) return 1 ;; esac; }

# wrk's "99%" latency in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
    printf "%.3f", v
  }' "$1"
}

measure() {
  local pass=$1 config=$2 scenario=$3
  local url="http://$HOST:${port[$config]}$(path_of "$scenario")"
  local args=(-t1 -c"$CONNECTIONS" --latency)
  if with_cookie "$scenario"; then args+=(-H "Cookie: ${cookie[$config]}"); fi
  taskset -c "$LOAD_CPU" wrk "${args[@]}" -d1s "$url" >/dev/null
  local raw="$out/raw/p${pass}-${config}-${scenario}.txt"
  local before after start end
  read -r ubefore sbefore < <(cpu_split "${pid[$config]}")
  before=$((ubefore + sbefore))
  start=$(date +%s%N)
  taskset -c "$LOAD_CPU" wrk "${args[@]}" -d"$SLICE" "$url" >"$raw"
  end=$(date +%s%N)
  read -r uafter safter < <(cpu_split "${pid[$config]}")
  after=$((uafter + safter))
  local rps p99 errors cpu requests user_us sys_us
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
  p99=$(p99_ms "$raw")
  errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { n += 1 } END { print n + 0 }' "$raw")
  # Share of its core the server used: near 100 % means the server was the
  # bottleneck; well below, something else was (Redis, wrk, other load).
  cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v ns=$((end - start)) \
    'BEGIN { printf "%.0f", 100 * t / hz / (ns / 1e9) }')
  # The server's CPU time per request, split into user space (hyper, axum,
  # the layer, the store) and kernel (sockets): where a session's cost lands.
  requests=$(awk '/requests in/ { print $1 }' "$raw")
  user_us=$(awk -v t=$((uafter - ubefore)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
  sys_us=$(awk -v t=$((safter - sbefore)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pass" "$config" "$scenario" "$rps" "$p99" "$errors" \
    "$cpu" "$user_us" "$sys_us" >>"$out/results.tsv"
  printf '  %-14s %-9s %10s req/s  p99 %7s ms  server cpu %3s%%  user %5s us  kernel %5s us%s\n' \
    "$config" "$scenario" "$rps" "$p99" "$cpu" "$user_us" "$sys_us" \
    "$([ "$errors" = 0 ] || echo "  ERRORS: $errors")" >&2
}

# User and system time of a process, in clock ticks.
cpu_split() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# --- machine -----------------------------------------------------------------
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc:    $(nproc)"
  echo "cpu:      $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
    "(family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
    "model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -n1))"
  echo "kernel:   $(uname -sr)"
  echo "rustc:    $(rustc --version)"
  echo "wrk:      $(wrk -v 2>&1 | head -n1 | awk '{ print $2 }'), -t1 -c$CONNECTIONS -d$SLICE slices (1 s warm-up each)"
  echo "redis:    $(redis-server --version | awk '{ print $3 }')"
  echo "cores:    server $SERVER_CPU, wrk $LOAD_CPU, redis-server $REDIS_CPU"
  echo "passes:   $PASSES"
  echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

case " $CONFIGS " in *redis*) start_redis ;; esac
pg_pid=""
case " $CONFIGS " in
  *postgres*)
    install_missing psql:postgresql
    start_postgres "$out/pg" 16432
    taskset -a -p -c "$REDIS_CPU" "$pg_pid" >/dev/null
    ;;
esac

# --- passes ------------------------------------------------------------------
printf 'pass\tconfig\tscenario\trps\tp99_ms\terrors\tserver_cpu_pct\tuser_us_per_req\tkernel_us_per_req\n' \
  >"$out/results.tsv"
read -r -a configs <<<"$CONFIGS"
n=${#configs[@]}
for i in $(seq 0 $((n - 1))); do port[${configs[$i]}]=$((PORT + i)); done
for pass in $(seq "$PASSES"); do
  echo "pass $pass/$PASSES" >&2
  # Fresh servers every pass, so no memory store carries the sessions of
  # earlier passes' new-session runs; all of them stay up for the pass (idle
  # ones cost nothing), so that the configurations of one scenario are
  # measured one right after the other, each for one short slice: a drift of
  # the machine's speed then moves both sides of a paired ratio alike.
  if [[ " $CONFIGS " == *redis* ]]; then rcli flushall >/dev/null; fi
  if [ -n "$pg_pid" ]; then psql -q "$pg_url" -c 'DROP TABLE IF EXISTS sessio_sessions' >/dev/null; fi
  for config in "${configs[@]}"; do start_server "$config"; done
  for scenario in $SCENARIOS; do
    # Each pass starts at a different configuration, so none always runs
    # first (or last).
    for i in $(seq 0 $((n - 1))); do
      measure "$pass" "${configs[$(((i + pass - 1) % n))]}" "$scenario"
    done
  done
  for config in "${configs[@]}"; do stop_server "$config"; done
done

# --- Redis commands per request ----------------------------------------------
: >"$out/redis-commands.tsv"
redis_calls() {
  rcli info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/\1 \2/p'
}
for config in $CONFIGS; do
  uses_redis "$config" || continue
  rcli flushall >/dev/null
  start_server "$config"
  for scenario in $ALL_SCENARIOS; do
    url="http://$HOST:${port[$config]}$(path_of "$scenario")?[1-$REDIS_COUNT]"
    curl_args=(-s -o /dev/null)
    if with_cookie "$scenario"; then curl_args+=(-H "Cookie: ${cookie[$config]}"); fi
    rcli config resetstat >/dev/null
    # MONITOR tells commands sent by the server from the ones a script runs
    # inside Redis. Neither crate pipelines within a request, so each command
    # sent is one round trip, except the client cache's load: `CLIENT CACHING
    # YES`, `HGETALL` and `PTTL` pipelined, three commands in one round trip.
    # redis-cli itself, not the rcli function: $! of a backgrounded function
    # is a subshell, and killing it left redis-cli monitoring (and writing
    # later scenarios' commands to this file) until Redis stopped.
    redis-cli -h "$HOST" -p "$REDIS_PORT" monitor >"$out/raw/monitor-$config-$scenario.txt" 2>/dev/null &
    mon=$!
    sleep 0.2
    curl "${curl_args[@]}" "$url"
    sleep 0.2
    kill "$mon" 2>/dev/null || true
    wait "$mon" 2>/dev/null || true
    redis_calls | grep -v -E '^(config|monitor|info)[| ]' >"$out/raw/commandstats-$config-$scenario.txt" || true
    sent=$(grep -v -c -E '\[[0-9]+ lua\]|"(config|info|monitor)"|^OK$' \
      "$out/raw/monitor-$config-$scenario.txt" || true)
    caching=$(grep -v -E '\[[0-9]+ lua\]' "$out/raw/monitor-$config-$scenario.txt" |
      grep -c -i '"client" "caching"' || true)
    trips=$((sent - 2 * caching))
    stats=$(awk -v n="$REDIS_COUNT" '{ printf "%s%s=%.2f", sep, toupper($1), $2 / n; sep = " " }' \
      "$out/raw/commandstats-$config-$scenario.txt")
    printf '%s\t%s\t%s\t%s\t%s\n' "$config" "$scenario" \
      "$(awk -v t="$sent" -v n="$REDIS_COUNT" 'BEGIN { printf "%.2f", t / n }')" \
      "$(awk -v t="$trips" -v n="$REDIS_COUNT" 'BEGIN { printf "%.2f", t / n }')" "${stats:--}" \
      >>"$out/redis-commands.tsv"
  done
  stop_server "$config"
done

# --- SQL statements per request ----------------------------------------------
# sqlx logs every statement it sends (target sqlx::query, DEBUG); each is one
# round trip to PostgreSQL, one prepared-statement run in SQLite.
: >"$out/sql-statements.tsv"
for config in $CONFIGS; do
  case "$config" in sessio-sqlite | sessio-postgres) ;; *) continue ;; esac
  server_log="$out/raw/statements-$config.log"
  : >"$server_log"
  RUST_LOG=sqlx::query=debug start_server "$config"
  for scenario in $ALL_SCENARIOS; do
    url="http://$HOST:${port[$config]}$(path_of "$scenario")?[1-$REDIS_COUNT]"
    curl_args=(-s -o /dev/null)
    if with_cookie "$scenario"; then curl_args+=(-H "Cookie: ${cookie[$config]}"); fi
    before=$(grep -c 'sqlx::query' "$server_log" || true)
    curl "${curl_args[@]}" "$url"
    sleep 0.2
    after=$(grep -c 'sqlx::query' "$server_log" || true)
    verbs=$(grep 'sqlx::query' "$server_log" | tail -n +$((before + 1)) |
      sed -n 's/.*summary="\([A-Za-z]*\).*/\1/p' | sort | uniq -c |
      awk -v n="$REDIS_COUNT" '{ printf "%s%s=%.2f", sep, toupper($2), $1 / n; sep = " " }')
    printf '%s\t%s\t%s\t%s\n' "$config" "$scenario" \
      "$(awk -v a="$after" -v b="$before" -v n="$REDIS_COUNT" 'BEGIN { printf "%.2f", (a - b) / n }')" \
      "${verbs:--}" >>"$out/sql-statements.tsv"
  done
  stop_server "$config"
  unset server_log
done

# --- memory ------------------------------------------------------------------
"$memsize" 100000 >"$out/memsize.txt"

# --- table -------------------------------------------------------------------
python3 "$here/report.py" "$out/results.tsv" >"$out/table.md"

{
  echo
  cat "$out/machine.txt"
  echo
  echo "$PASSES passes of $SLICE slices. req/s, p99 and CPU: medians over the passes."
  echo "Ratios: median of the per-pass paired ratios [lowest, highest pass]."
  echo "× tower-sessions: sessio-redis and sessio-redis-cached against ts-redis, every other sessio configuration against ts-memory."
  echo
  cat "$out/table.md"
  if [ -s "$out/redis-commands.tsv" ]; then
    echo
    echo "Redis per request ($REDIS_COUNT sequential requests per scenario):"
    echo "| configuration | scenario | commands sent | round trips | INFO commandstats calls, script-internal included |"
    echo "|---|---|---:|---:|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$out/redis-commands.tsv"
  fi
  if [ -s "$out/sql-statements.tsv" ]; then
    echo
    echo "SQL per request ($REDIS_COUNT sequential requests per scenario):"
    echo "| configuration | scenario | statements sent | by first word |"
    echo "|---|---|---:|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$out/sql-statements.tsv"
  fi
  echo
  echo "MemoryStore, 100k sessions:"
  sed 's/^/    /' "$out/memsize.txt"
} | tee "$out/report.txt"
