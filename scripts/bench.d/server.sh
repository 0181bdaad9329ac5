# ---- Section: demo server, broadcast load ------------------------------------
# A release heartline-server on 127.0.0.1 (port 0, address read from its ready
# file, a throwaway file database) and the load generator
# (crates/heartline-server/examples/loadgen.rs): BENCH_CLIENTS clients (1000)
# in one room, each sending chat.send at BENCH_RATE messages/s (1) for
# BENCH_SECONDS (10); every receiver measures the broadcast latency. Bounded
# in count and time, loopback only.
bench_server() {
  local clients="${BENCH_CLIENTS:-1000}" rate="${BENCH_RATE:-1}" secs="${BENCH_SECONDS:-10}"
  bench_log "cargo build --release -p heartline-server --bin heartline-server --example loadgen"
  cargo build --release -p heartline-server --bin heartline-server --example loadgen
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  # Each client is a socket in the generator and one in the server.
  local need=$((clients * 2 + 256)) soft
  soft="$(ulimit -n)"
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  fi
  local dir pid addr="" status=0
  dir="$(mktemp -d)"
  "$target/heartline-server" --addr 127.0.0.1:0 --db "$dir/bench.db" --dist "$dir" \
    --ready-file "$dir/ready" --max-connections-per-ip $((clients + 16)) \
    --rate 1000 --burst 1000 --send-queue 4096 2>"$dir/server.log" &
  pid=$!
  wait_for_file "$dir/ready" 30 "the release server" "$pid"
  addr="$(cat "$dir/ready")"
  local cmd="loadgen --url ws://$addr/ws --clients $clients --rate $rate --duration $secs"
  bench_log "$cmd"
  timeout $((secs + 120)) "$target/examples/loadgen" --url "ws://$addr/ws" \
    --clients "$clients" --rate "$rate" --duration "$secs" | tee "$BENCH_OUT/server.log" >&2 || status=$?
  stop_pid "$pid"
  if [ "$status" -ne 0 ]; then
    tail -n 20 "$dir/server.log" >&2
    rm -rf "$dir"
    die "the load generator failed ($status)"
  fi
  rm -rf "$dir"
  report_begin server "Demo server: broadcast load" <<MD
A release \`heartline-server\` on 127.0.0.1 (a throwaway SQLite file) and the
load generator (\`crates/heartline-server/examples/loadgen.rs\`) on the same
machine: $clients clients join one room and each sends \`chat.send\` at
$rate msg/s for $secs s; every receiver measures the broadcast latency.
MD
  report_row "broadcast latency and delivery, $clients clients × $rate msg/s" \
    "$(grep '^broadcast latency' "$BENCH_OUT/server.log")" "" "" "scripts/bench server"
  report_end
}
