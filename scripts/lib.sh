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

# start_server LOGFILE [extra server flags...]: builds and starts the demo
# server on a free loopback port; sets SERVER_ADDR (host:port) and SERVER_PID.
start_server() {
  local logfile="$1"; shift
  local ready
  ready="$(mktemp -u "${TMPDIR:-/tmp}/heartline-ready.XXXXXX")"
  cargo build -q -p heartline-server
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/heartline-server" --ready-file "$ready" "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  wait_for_file "$ready" 60 "the demo server (log: $logfile)" "$SERVER_PID"
  SERVER_ADDR="$(cat "$ready")"
  rm -f "$ready"
  log "demo server on $SERVER_ADDR (pid $SERVER_PID)"
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
