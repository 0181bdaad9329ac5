# Shared by scripts/dev, scripts/test and scripts/bench: idempotent installs of
# everything a fresh machine lacks, and small helpers to run the demo server.
# Each ensure_* checks first and installs only what is missing or of the wrong
# version, so a warm run does no installs.
#
# Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CI may run with a bare environment; rustup, cargo and npm need a home.
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
TOOLS_DIR="${HEARTLINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/heartline}"
export PATH="$HOME/.cargo/bin:$TOOLS_DIR/binaryen/node_modules/.bin:$PATH"

# Versions that must match each other. wasm-bindgen comes from Cargo.lock;
# trunk and wasm-opt are pinned here and in Trunk.toml.
TRUNK_VERSION="0.21.14"
BINARYEN_VERSION="123.0.0"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust_components() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  local installed
  installed="$(rustup component list --installed 2>/dev/null || true)"
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || { log "rustup component add $component"; rustup component add "$component"; }
  done
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

wasm_bindgen_version() {
  # The version Cargo.lock resolved; the CLI must be exactly this.
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_wasm_bindgen_cli() {
  local want have
  want="$(wasm_bindgen_version)"
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ]; then
    log "cargo install wasm-bindgen-cli $want (have: ${have:-none})"
    # Not --locked: a dependency locked by that release is missing from the
    # registry here; the CLI's own version is what must match.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_trunk() {
  local have
  have="$(trunk --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$TRUNK_VERSION" ]; then
    log "cargo install trunk $TRUNK_VERSION (have: ${have:-none})"
    # trunk 0.22 needs a newer rustc than this machine's.
    cargo install trunk --version "$TRUNK_VERSION" --locked --force
  fi
}

ensure_node() {
  if ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
}

ensure_wasm_opt() {
  local want="version_${BINARYEN_VERSION%%.*}"
  grep -q "wasm_opt = \"$want\"" "$ROOT/Trunk.toml" || die "Trunk.toml [tools] wasm_opt must be \"$want\""
  if ! wasm-opt --version 2>/dev/null | grep -q "($want)"; then
    ensure_node
    log "npm install binaryen@$BINARYEN_VERSION into $TOOLS_DIR/binaryen"
    mkdir -p "$TOOLS_DIR/binaryen"
    (cd "$TOOLS_DIR/binaryen" && npm install --no-save --no-audit --no-fund --prefix . "binaryen@$BINARYEN_VERSION" >/dev/null)
    wasm-opt --version | grep -q "($want)" || die "wasm-opt $want did not install"
  fi
}

ensure_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
  fi
  export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
}

# ensure_postgres: installs Debian's postgresql if no server is installed, and
# sets PG_BIN to the newest /usr/lib/postgresql/<version>/bin (initdb, pg_ctl,
# pg_isready, psql; not on PATH on a fresh Debian machine, and never taken from
# PATH here) and PG_RUN_USER to the user initdb and pg_ctl run as: ourselves,
# or when root (PostgreSQL refuses to run as root) the package's `postgres`
# system user, created (as heartline-pg) if missing. The package's post-install
# may start a system cluster on port 5432; we never use it.
PG_BIN=""
PG_RUN_USER=""
ensure_postgres() {
  PG_BIN="$(postgres_bin_dir)"
  if [ -z "$PG_BIN" ]; then
    apt_install postgresql
    PG_BIN="$(postgres_bin_dir)"
    [ -n "$PG_BIN" ] || die "postgresql installed, but no /usr/lib/postgresql/*/bin/initdb"
  fi
  local tool
  for tool in initdb pg_ctl pg_isready psql; do
    [ -x "$PG_BIN/$tool" ] || die "$PG_BIN/$tool is missing"
  done
  if [ "$(id -u)" -ne 0 ]; then
    PG_RUN_USER="$(id -un)"
  elif id -u postgres >/dev/null 2>&1; then
    PG_RUN_USER=postgres
  else
    PG_RUN_USER=heartline-pg
    if ! id -u "$PG_RUN_USER" >/dev/null 2>&1; then
      log "useradd --system $PG_RUN_USER (initdb and pg_ctl refuse to run as root)"
      useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$PG_RUN_USER"
    fi
  fi
}

# postgres_bin_dir: prints the bin dir of the newest installed PostgreSQL
# server (/usr/lib/postgresql/<version>/bin with an initdb), or nothing.
postgres_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && printf '%s\n' "$dir"
  done | sort -t/ -k5,5V | tail -n 1
}

# ensure_redis: installs Debian's redis-server (which brings redis-cli) if
# either is missing. Its post-install may start a system redis on port 6379;
# we never use it.
ensure_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
    command -v redis-server >/dev/null || die "redis-server installed, but not on PATH"
  fi
}

# Everything the SPA build needs.
ensure_web_toolchain() {
  ensure_rust_components
  ensure_wasm_bindgen_cli
  ensure_trunk
  ensure_wasm_opt
}

# --- running the demo server -------------------------------------------------

SERVER_PID=""
SERVER_ADDR=""
SERVER_PIDS=()

# start_server LOGFILE [extra server flags...]: builds and starts the demo
# server on a free loopback port; sets SERVER_ADDR (host:port) and SERVER_PID
# to those of this server, and appends its pid to SERVER_PIDS. Call it again
# for more servers (each call overwrites SERVER_ADDR and SERVER_PID: keep
# them if you need them); stop_servers stops them all.
start_server() {
  local logfile="$1"; shift
  local ready
  ready="$(mktemp -u "${TMPDIR:-/tmp}/heartline-ready.XXXXXX")"
  cargo build -q -p heartline-server
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/heartline-server" --ready-file "$ready" "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  wait_for_file "$ready" 60 "the demo server (log: $logfile)" "$SERVER_PID"
  SERVER_ADDR="$(cat "$ready")"
  rm -f "$ready"
  log "demo server on $SERVER_ADDR (pid $SERVER_PID)"
}

# stop_servers: stops every server start_server started (stop_pid each; a
# server already gone, e.g. killed by hand, is fine).
stop_servers() {
  local pid
  for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do
    stop_pid "$pid"
  done
  SERVER_PIDS=()
  SERVER_PID=""
}

PROXY_PID=""
PROXY_LISTEN=""
PROXY_CONTROL=""

# start_proxy LOGFILE UPSTREAM: starts the fault-injecting proxy in front of
# UPSTREAM (host:port) on free loopback ports; sets PROXY_LISTEN,
# PROXY_CONTROL and PROXY_PID.
start_proxy() {
  local logfile="$1" upstream="$2"
  local ready
  ready="$(mktemp -u "${TMPDIR:-/tmp}/heartline-proxy.XXXXXX")"
  cargo build -q -p heartline-faultproxy
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/heartline-faultproxy" --upstream "$upstream" --ready-file "$ready" >"$logfile" 2>&1 &
  PROXY_PID=$!
  wait_for_file "$ready" 60 "the fault proxy (log: $logfile)" "$PROXY_PID"
  PROXY_LISTEN="$(sed -E 's/.*"listen":"([^"]+)".*/\1/' "$ready")"
  PROXY_CONTROL="$(sed -E 's/.*"control":"([^"]+)".*/\1/' "$ready")"
  log "fault proxy on $PROXY_LISTEN -> $upstream, control on $PROXY_CONTROL (pid $PROXY_PID)"
}

# wait_for_file PATH SECONDS WHAT [PID]: polls until PATH exists and is not
# empty; fails early if PID died.
wait_for_file() {
  local path="$1" seconds="$2" what="$3" pid="${4:-}"
  local deadline=$((SECONDS + seconds))
  until [ -s "$path" ]; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      die "$what exited before it was ready"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
    sleep 0.1
  done
}

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# --- private PostgreSQL and Redis on loopback --------------------------------

# free_port: prints a loopback TCP port that nothing listens on, picked at
# random below the kernel's ephemeral range (so no outgoing connection or
# port-0 server of ours holds it). Another process may still bind it first:
# start_postgres and start_redis try again with another port if theirs fails.
free_port() {
  local low=32768 tries port
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 21000 ] || low=30000
  for ((tries = 0; tries < 200; tries++)); do
    port=$((20000 + RANDOM % (low - 20000)))
    # A refused connect means no listener (on 127.0.0.1 or on a wildcard).
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "found no free loopback port"
}

# as_pg_user COMMAND...: runs COMMAND as PG_RUN_USER (see ensure_postgres),
# from a directory that user can enter.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$PG_RUN_USER" -- env LC_ALL=C "$@")
  else
    env LC_ALL=C "$@"
  fi
}

PG_DIR=""
PG_PORT=""
PG_PID=""

# start_postgres DIR: a private PostgreSQL for this run: initdb into DIR/data,
# listening on 127.0.0.1 only at a free port, its unix socket in DIR, trust
# authentication (loopback and that socket only), max_connections 200 (several
# servers with pools, plus the tests' own). Waits (pg_isready, 30 s deadline)
# until it accepts connections, then sets PG_PORT and PG_PID and exports
#   HEARTLINE_TEST_PG_URL=postgres://postgres@127.0.0.1:<port>/postgres
# (superuser `postgres`; tests and scripts/dev create their own databases from
# it). When root, DIR is chowned to PG_RUN_USER, so DIR's parents must let it
# through (a fresh `mktemp -d` under /tmp does). Calls ensure_postgres. Always
# pair with stop_postgres (in the caller's EXIT trap). DIR is the caller's to
# remove afterwards.
start_postgres() {
  local dir="$1" attempt
  ensure_postgres
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$PG_RUN_USER:" "$dir"
    as_pg_user test -w "$dir" || die "user $PG_RUN_USER cannot write to $dir (is a parent directory private? use a fresh mktemp -d under /tmp)"
  fi
  # The socket path must fit in sun_path (107 bytes).
  [ "${#dir}" -lt 80 ] || die "$dir is too long a path for PostgreSQL's unix socket"
  PG_DIR="$dir"
  # --no-sync: initdb's final fsync of a cluster that lives only for this run
  # costs seconds on a busy disk and protects nothing.
  as_pg_user "$PG_BIN/initdb" -D "$dir/data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (log: $dir/initdb.log)"; }
  # Only loopback, only trust: nobody else can reach this instance.
  cat >"$dir/data/pg_hba.conf" <<'HBA'
local all         all               trust
host  all         all  127.0.0.1/32 trust
host  all         all  ::1/128      trust
local replication all               trust
host  replication all  127.0.0.1/32 trust
HBA
  [ "$(id -u)" -ne 0 ] || chown "$PG_RUN_USER:" "$dir/data/pg_hba.conf"
  # fsync stays on. Measured here (2 busy cores): fsync=off with
  # synchronous_commit=off saves 0.3 to 1.7 ms per autocommit insert (2,000 in
  # 0.43 s against 1.0 to 3.9 s) and nothing on CREATE DATABASE (~0.2 s each
  # either way): seconds at most for the hundreds of commits the tests make.
  for attempt in 1 2 3 4 5; do
    PG_PORT="$(free_port)"
    rm -f "$dir/postgres.log"
    if as_pg_user "$PG_BIN/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -s \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$dir' -c max_connections=200" \
      >>"$dir/pg_ctl.log" 2>&1; then
      break
    fi
    if grep -q "could not bind\|Address already in use" "$dir/postgres.log" 2>/dev/null && [ "$attempt" -lt 5 ]; then
      log "PostgreSQL could not bind port $PG_PORT; trying another"
      continue
    fi
    tail -n 20 "$dir/postgres.log" >&2 || true
    PG_PORT=""
    die "PostgreSQL did not start (log: $dir/postgres.log)"
  done
  PG_PID="$(head -n 1 "$dir/data/postmaster.pid")"
  local deadline=$((SECONDS + 30))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; do
    kill -0 "$PG_PID" 2>/dev/null || die "PostgreSQL exited before it was ready (log: $dir/postgres.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for PostgreSQL on 127.0.0.1:$PG_PORT (log: $dir/postgres.log)"
    sleep 0.1
  done
  export HEARTLINE_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (pid $PG_PID, dir $dir)"
}

# stop_postgres: stops the instance start_postgres started (immediate
# shutdown: its data is thrown away), if any; kills it if pg_ctl cannot.
# Safe to call twice, or without a start.
stop_postgres() {
  [ -n "$PG_DIR" ] || return 0
  # Also after a start that failed half-way (pg_ctl gave up waiting).
  [ -n "$PG_PID" ] || PG_PID="$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)"
  if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
    as_pg_user "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m immediate -w -t 10 -s >/dev/null 2>&1 || true
    if kill -0 "$PG_PID" 2>/dev/null; then
      kill -KILL "$PG_PID" 2>/dev/null || true
    fi
  fi
  PG_DIR=""
  PG_PID=""
  PG_PORT=""
  unset HEARTLINE_TEST_PG_URL
}

REDIS_PID=""
REDIS_PORT=""

# start_redis DIR: a private redis-server for this run on a free 127.0.0.1
# port, no persistence (no RDB snapshots, no AOF), working dir and log in
# DIR. Waits (redis-cli ping answers PONG, 30 s deadline), then sets
# REDIS_PORT and REDIS_PID and exports
#   HEARTLINE_TEST_REDIS_URL=redis://127.0.0.1:<port>
#   HEARTLINE_REDIS_SERVER=<path of redis-server>  (for tests that start,
#                                                  kill and restart their own)
# Calls ensure_redis. Always pair with stop_redis (in the caller's EXIT trap).
start_redis() {
  local dir="$1" attempt
  ensure_redis
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  for attempt in 1 2 3 4 5; do
    REDIS_PORT="$(free_port)"
    rm -f "$dir/redis.log"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "$dir" --logfile "$dir/redis.log" --daemonize no </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    local deadline=$((SECONDS + 30))
    until [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
      if ! kill -0 "$REDIS_PID" 2>/dev/null; then
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
        break
      fi
      [ "$SECONDS" -lt "$deadline" ] || { stop_pid "$REDIS_PID"; REDIS_PID=""; die "timed out waiting for redis-server on 127.0.0.1:$REDIS_PORT (log: $dir/redis.log)"; }
      sleep 0.1
    done
    [ -z "$REDIS_PID" ] || break
    if grep -q "Address already in use" "$dir/redis.log" 2>/dev/null && [ "$attempt" -lt 5 ]; then
      log "redis-server could not bind port $REDIS_PORT; trying another"
      continue
    fi
    tail -n 20 "$dir/redis.log" >&2 || true
    REDIS_PORT=""
    die "redis-server did not start (log: $dir/redis.log)"
  done
  export HEARTLINE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  HEARTLINE_REDIS_SERVER="$(command -v redis-server)"
  export HEARTLINE_REDIS_SERVER
  log "redis-server $(redis-server --version | sed -E 's/.* v=([^ ]+).*/\1/') on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID, dir $dir)"
}

# stop_redis: stops the redis-server start_redis started, if any. Safe to
# call twice, or without a start.
stop_redis() {
  stop_pid "$REDIS_PID"
  REDIS_PID=""
  REDIS_PORT=""
  unset HEARTLINE_TEST_REDIS_URL
}
