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
