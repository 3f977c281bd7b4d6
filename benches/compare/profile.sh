#!/usr/bin/env bash
# Where a comparison server's CPU time goes, per request: perf samples
# (cpu-clock, 4999 Hz) of the server under the same wrk load as run.sh,
# self time grouped by what it is (kernel, SHA-256, allocator, JSON, ...).
# BENCHMARKS.md ("What limits") has a table made with it.
#
#   benches/compare/profile.sh [CONFIG...]     # default: bare sessio-memory ts-memory
#
# Environment: SCENARIO (rmw; or untouched, read, new), DURATION (5 s),
# SERVER_CPU (1), LOAD_CPU (0), COMPARE_TARGET_DIR (as run.sh). Redis
# configurations need a Redis at REDIS_URL. Sampling slows the server by
# about a tenth, so compare the columns with each other, not with run.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/target/compare/profile"
SCENARIO=${SCENARIO:-rmw}
DURATION=${DURATION:-5}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=18280
HOST=127.0.0.1
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(bare sessio-memory ts-memory)

# shellcheck source=benches/compare/lib.sh
. "$here/lib.sh"
install_missing perf:linux-perf wrk:wrk curl:curl
build_servers
mkdir -p "$out"

case "$SCENARIO" in
  untouched) path=/ cookie=no ;;
  read) path=/read cookie=yes ;;
  rmw) path=/incr cookie=yes ;;
  new) path=/incr cookie=no ;;
  *) echo "SCENARIO is one of untouched, read, rmw, new" >&2; exit 2 ;;
esac

spid=""
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null; true' EXIT

for config in "${configs[@]}"; do
  taskset -c "$SERVER_CPU" "$server" "$config" "$PORT" >"$out/server.log" 2>&1 &
  spid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$HOST:$PORT/" && break; sleep 0.05; done
  args=(-t1 -c32)
  if [ "$cookie" = yes ]; then
    args+=(-H "Cookie: $(session_cookie "http://$HOST:$PORT")")
  fi
  url="http://$HOST:$PORT$path"
  taskset -c "$LOAD_CPU" wrk "${args[@]}" -d1s "$url" >/dev/null
  perf record -q -F 4999 -e cpu-clock -p "$spid" -o "$out/$config.data" -- sleep "$DURATION" \
    >/dev/null 2>&1 &
  ppid=$!
  requests=$(taskset -c "$LOAD_CPU" wrk "${args[@]}" -d"${DURATION}s" "$url" |
    awk '/requests in/ { print $1 }')
  wait "$ppid" || true
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  spid=""
  perf report -i "$out/$config.data" --no-children --sort dso,sym -F overhead,dso,sym \
    --percent-limit 0 2>/dev/null | grep -v '^#' | grep -v '^$' >"$out/$config.txt"
  echo "$requests" >"$out/$config.requests"
done

python3 - "$out" "$DURATION" "${configs[@]}" <<'PY'
import re, sys
out, duration, configs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
# First match wins, so the order matters.
groups = [
    ("kernel (sockets)", r"\[kernel"),
    ("SHA-256", r"sha2::"),
    ("base64", r"base64::"),
    ("AES-GCM", r"aes|ghash|polyval|ctr::"),
    ("allocator", r"malloc|free|_int_|realloc|calloc|consolidate"),
    ("memcpy / memmove / memset", r"memmove|memcpy|memset"),
    ("clock reads", r"clock_gettime|vdso"),
    ("serde_json", r"serde_json|serde::"),
    ("hash maps", r"hashbrown|hash_one|foldhash|sip::|BuildHasher"),
    ("http header map and extensions", r"http::header|http::extensions|HeaderMap|HeaderValue"),
    ("tokio sync", r"tokio::sync"),
    ("the session crate's own code", r"sessio::|tower_sessions"),
    ("hyper, axum, tokio and the rest", r"."),
]
cols = {}
for config in configs:
    requests = int(open(f"{out}/{config}.requests").read().strip() or 0)
    # The server is CPU bound on its core, so CPU per request is the run's
    # length over its requests; perf's shares split it.
    per = duration * 1e6 / requests if requests else 0.0
    share = {g: 0.0 for g, _ in groups}
    for line in open(f"{out}/{config}.txt"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.*)", line)
        if not m:
            continue
        key = m.group(2) + " " + m.group(3)
        for g, pat in groups:
            if re.search(pat, key):
                share[g] += float(m.group(1))
                break
    cols[config] = (per, {g: share[g] * per / 100 for g in share})
print("| where | " + " | ".join(f"{c} µs" for c in configs) + " |")
print("|---|" + "---:|" * len(configs))
for g, _ in groups:
    print(f"| {g} | " + " | ".join(f"{cols[c][1][g]:.2f}" for c in configs) + " |")
print("| **CPU per request** | " + " | ".join(f"**{cols[c][0]:.2f}**" for c in configs) + " |")
PY
