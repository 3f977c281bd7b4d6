# Shared by run.sh, instructions.sh and profile.sh; sourced, not run.
# Expects `here` (this directory) and `root` (the repository) to be set.

# install_missing COMMAND:PACKAGE...: installs, from Debian's packages, the
# package of every command that is not on the PATH.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  echo "installing ${need[*]} from Debian's packages" >&2
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
}

# build_servers: builds the comparison servers in release mode, in their own
# target directory so the comparison's dependencies (tower-sessions, fred)
# never mix with the crate's builds; sets `server` and `memsize`.
build_servers() {
  export CARGO_TARGET_DIR=${COMPARE_TARGET_DIR:-$root/target/compare-build}
  echo "building the servers (release) in $CARGO_TARGET_DIR" >&2
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  server="$CARGO_TARGET_DIR/release/sessio-compare"
  memsize="$CARGO_TARGET_DIR/release/memsize"
}

# session_cookie BASE_URL: the session cookie of a fresh session (one request
# to /incr). The bare server sets none; it gets a cookie of the same shape, so
# every server parses the same header.
session_cookie() {
  local c
  c=$(curl -s -D - -o /dev/null "$1/incr" |
    tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -n1)
  if [ -z "$c" ]; then
    c="id=AQAAAABrAVlYAAAAAGsBWVgAAAAAawKq2Fk4RzJtcnU1NjlCUTJsY2NaelVac0E.VWN-uX-2HJPX63weys486qtg4wMgw63gRBlrxY8qDX4"
  fi
  printf '%s' "$c"
}

# start_postgres DIR PORT: a throwaway PostgreSQL cluster in DIR (initdb as
# the `postgres` user, which Debian's package creates; initdb refuses root),
# listening on 127.0.0.1:PORT, durability off as in the tests, every
# statement logged to DIR/log (log_statement=all). Sets `pg_url`.
start_postgres() {
  local dir=$1 port=$2 bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -x "$bin/initdb" ] || { echo "PostgreSQL binaries not found (apt-get install postgresql)" >&2; exit 1; }
  rm -rf "$dir" && mkdir -p "$dir"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C -N >"$dir/initdb.log" 2>&1
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_statement=all" \
    >/dev/null
  pg_stop=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop)
  pg_pid=$(head -n1 "$dir/data/postmaster.pid")
  pg_url="postgres://postgres@127.0.0.1:$port/postgres"
}

# stop_postgres: stops the cluster start_postgres started, if any.
stop_postgres() {
  if [ -n "${pg_pid:-}" ]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; pg_pid=""; fi
  return 0
}
