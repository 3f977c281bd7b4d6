#!/usr/bin/env bash
# User-space instructions per request of each comparison server, counted by
# callgrind: a number that does not move with the machine's load. SHA-256
# compression is reported apart, since valgrind hides the CPU's SHA
# extensions and runs it in software. See BENCHMARKS.md.
#
#   benches/compare/instructions.sh          # about 10 minutes
#
# Environment: CONFIGS (all but the SQL ones; sessio-sqlite and
# sessio-postgres when named, a PostgreSQL cluster is then started on
# 127.0.0.1:16433), REQUESTS (2000 measured, after as many
# warm-up requests), SERVER (a server binary already built, e.g. of another
# commit; otherwise built like run.sh, in COMPARE_TARGET_DIR), OUT (where the
# results go, target/compare). Writes OUT/instructions.tsv and prints a table.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/target/compare}
CONFIGS=${CONFIGS:-bare sessio-memory sessio-cookie sessio-redis sessio-redis-cached ts-memory ts-memory-signed ts-redis}
REQUESTS=${REQUESTS:-2000}
PORT=18180
REDIS_PORT=16380
HOST=127.0.0.1

# shellcheck source=benches/compare/lib.sh
. "$here/lib.sh"
install_missing valgrind:valgrind redis-server:redis-server curl:curl
if [ -n "${SERVER:-}" ]; then server=$SERVER; else build_servers; fi

mkdir -p "$out/callgrind"
vg_pid=""
redis_pid=""
cleanup() {
  [ -n "$vg_pid" ] && kill "$vg_pid" 2>/dev/null && wait "$vg_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  stop_postgres
  return 0
}
trap cleanup EXIT INT TERM

redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
  --loglevel warning >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  redis-cli -h "$HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

# The program's total "Ir" (no pattern), or the self cost summed over the
# functions whose name is $2 exactly. Only the function table is read
# (--auto=no): source annotation would add call lines ("=> ...") that name
# the function too, counted with whatever the caller's inlining left there.
# One function appears once per source file its inlined code came from
# (soft.rs, core's intrinsics, ...); those rows are all its own cost.
ir() {
  callgrind_annotate --auto=no --inclusive=no --threshold=100 "$1" 2>/dev/null |
    awk -v fn="$2" '
      fn == "" && /PROGRAM TOTALS/ { gsub(",", "", $1); s = $1 }
      fn != "" && $1 ~ /^[0-9,]+$/ {
        name = $0; sub(/ \[[^]]*\]$/, "", name)
        sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", name); sub(/^[^:]*:/, "", name)
        if (name == fn) { gsub(",", "", $1); s += $1 }
      }
      END { print s + 0 }'
}

pg_pid="" pg_url=""
case " $CONFIGS " in *postgres*) start_postgres "$out/pg-callgrind" 16433 ;; esac

printf 'config\tscenario\tinstructions\tsha256_instructions\n' >"$out/instructions.tsv"
for config in $CONFIGS; do
  for scenario in untouched read rmw new; do
    case $scenario in untouched) path=/ ;; read) path=/read ;; *) path=/incr ;; esac
    file="$out/callgrind/$config-$scenario.out"
    rm -f "$file" "$file".*
    REDIS_URL="redis://$HOST:$REDIS_PORT" DATABASE_URL="$pg_url" \
      SQLITE_PATH="$out/callgrind/$config.sqlite3" valgrind --tool=callgrind --callgrind-out-file="$file" \
      "$server" "$config" "$PORT" >/dev/null 2>&1 &
    vg_pid=$!
    for _ in $(seq 200); do
      curl -s -o /dev/null "http://$HOST:$PORT/" && break
      sleep 0.1
    done
    args=(-s -o /dev/null)
    if [ "$scenario" = read ] || [ "$scenario" = rmw ]; then
      args+=(-H "Cookie: $(session_cookie "http://$HOST:$PORT")")
    fi
    curl "${args[@]}" "http://$HOST:$PORT$path?[1-$REQUESTS]"
    callgrind_control -z "$vg_pid" >/dev/null 2>&1
    curl "${args[@]}" "http://$HOST:$PORT$path?[1-$REQUESTS]"
    callgrind_control -d "$vg_pid" >/dev/null 2>&1
    sleep 1
    kill "$vg_pid" 2>/dev/null || true
    wait "$vg_pid" 2>/dev/null || true
    vg_pid=""
    dump="$file.1"
    total=$(ir "$dump" "")
    sha=$(ir "$dump" "sha2::sha256::compress256")
    printf '%s\t%s\t%d\t%d\n' "$config" "$scenario" $((total / REQUESTS)) $((sha / REQUESTS)) \
      >>"$out/instructions.tsv"
    printf '  %-14s %-9s %7d instructions/request (SHA-256 in software: %d)\n' \
      "$config" "$scenario" $((total / REQUESTS)) $((sha / REQUESTS)) >&2
  done
done
cat "$out/instructions.tsv"
