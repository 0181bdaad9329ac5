# ---- Section: demo server against a peer, broadcast load -------------------
# The load generator (crates/heartline-server/examples/loadgen.rs) against
# the release heartline-server and against a reference broadcast server on
# the npm package ws (bench/node-peer/server.js, installed with npm ci from
# its committed package-lock.json), at 1,000 and 5,000 clients in one room,
# servers alternated, BENCH_SERVER_ROUNDS rounds (2). Loopback only; every
# run bounded by `timeout`, every server stopped.

# One run: server_run KIND CLIENTS RATE SECS OUT. KIND is ours or ws. Writes
# the loadgen's JSON line plus the servers' peak RSS and CPU and the
# generator's CPU to OUT as key=value lines ("failed=1" when it timed out).
server_run() {
  local kind="$1" clients="$2" rate="$3" secs="$4" out="$5"
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release" dir pid addr status=0
  dir="$(mktemp -d)"
  if [ "$kind" = ours ]; then
    "$target/heartline-server" --addr 127.0.0.1:0 --db "$dir/bench.db" --dist "$dir" \
      --ready-file "$dir/ready" --max-connections-per-ip $((clients + 16)) \
      --max-pending-per-ip 128 --rate 1000 --burst 1000 --send-queue 4096 2>"$dir/server.log" &
  else
    node "$ROOT/bench/node-peer/server.js" --addr 127.0.0.1:0 --ready-file "$dir/ready" \
      2>"$dir/server.log" &
  fi
  pid=$!
  SERVER_BENCH_PIDS+=("$pid")
  wait_for_file "$dir/ready" 30 "the $kind server" "$pid"
  addr="$(cat "$dir/ready")"
  # bash's `time` reports the user + system CPU of the generator (waited
  # for by timeout, so counted in its children).
  local TIMEFORMAT='%U %S'
  { time timeout $((secs + 60)) "$target/examples/loadgen" --url "ws://$addr/ws" \
    --clients "$clients" --rate "$rate" --duration "$secs" >"$dir/loadgen.out" 2>"$dir/loadgen.err"; } \
    2>"$dir/loadgen.time" || status=$?
  {
    grep '^{' "$dir/loadgen.out" || true
    printf 'failed=%s\n' "$([ "$status" -eq 0 ] && echo 0 || echo 1)"
    printf 'server_rss_kb=%s\n' "$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
    printf 'server_cpu_s=%s\n' "$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$pid/stat" 2>/dev/null)"
    printf 'loadgen_cpu_s=%s\n' "$(awk 'NF == 2 {printf "%.1f", $1 + $2}' "$dir/loadgen.time")"
  } >"$out"
  printf 'deliveries_per_cpu_s=%s\n' "$(server_per_cpu "$out")" >>"$out"
  cat "$dir/loadgen.out" "$out" >&2
  stop_pid "$pid"
  rm -rf "$dir"
}

# server_field FILE KEY: a figure of one run (JSON key of the loadgen line,
# or a key=value line).
server_field() {
  node -e '
    const fs = require("fs");
    const [file, key] = process.argv.slice(1);
    const lines = fs.readFileSync(file, "utf8").split("\n");
    const json = lines.find((l) => l.startsWith("{"));
    const kv = Object.fromEntries(lines.filter((l) => l.includes("=")).map((l) => l.split("=")));
    const j = json ? JSON.parse(json) : {};
    const v = key === "p50" || key === "p99" ? j.latency_ms?.[key] : (key in kv ? kv[key] : j[key]);
    console.log(v === undefined || v === null ? "" : v);' "$1" "$2"
}

# server_median KEY FILES...: the median of a figure over runs (the lower
# middle of an even count; runs that failed are left out).
server_median() { runs_median server_field "$@"; }

# server_max KEY FILES...: the largest value of a figure over runs.
server_max() { runs_max server_field "$@"; }

# server_all_delivered FILES...: "yes" when every run delivered everything.
server_all_delivered() {
  local f
  for f in "$@"; do
    [ "$(server_field "$f" failed)" = 0 ] &&
      [ "$(server_field "$f" delivered)" = "$(server_field "$f" expected)" ] || { echo no; return; }
  done
  echo yes
}

# server_per_cpu FILE: deliveries per second of server CPU in one run.
server_per_cpu() {
  awk -v d="$(server_field "$1" delivered)" -v c="$(server_field "$1" server_cpu_s)" \
    'BEGIN { if (d != "" && c + 0 > 0) printf "%.0f\n", d / c }'
}

bench_server() {
  local rounds="${BENCH_SERVER_ROUNDS:-2}" secs="${BENCH_SECONDS:-8}"
  # Offered loads chosen so that both servers deliver them on this 2-core
  # machine shared with the generator: 100 messages/s × 1,000 receivers
  # and 20 messages/s × 5,000 receivers, 100,000 deliveries/s each. (At
  # higher loads the generator, one thread, is the bottleneck: it reads
  # 250,000–290,000 deliveries/s from either server.)
  local -A rate=([1000]="${BENCH_RATE_1000:-0.1}" [5000]="${BENCH_RATE_5000:-0.004}")
  bench_log "cargo build --release -p heartline-server --bin heartline-server --example loadgen"
  cargo build --release -p heartline-server --bin heartline-server --example loadgen
  ensure_node
  bench_log "npm ci in bench/node-peer"
  (cd "$ROOT/bench/node-peer" && npm ci --no-audit --no-fund --loglevel=error >&2)
  # Each client is a socket in the generator and one in the server.
  local need=$((5000 * 2 + 256)) soft
  soft="$(ulimit -n)"
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  fi
  SERVER_BENCH_PIDS=()
  trap 'for p in "${SERVER_BENCH_PIDS[@]}"; do stop_pid "$p"; done' EXIT
  local round clients kind order
  rm -f "$BENCH_OUT"/server-*.run
  for round in $(seq 1 "$rounds"); do
    # Alternate which server goes first, round by round.
    if [ $((round % 2)) -eq 1 ]; then order="ours ws"; else order="ws ours"; fi
    for clients in 1000 5000; do
      for kind in $order; do
        bench_log "round $round: $kind, $clients clients × ${rate[$clients]} msg/s for $secs s"
        server_run "$kind" "$clients" "${rate[$clients]}" "$secs" \
          "$BENCH_OUT/server-$kind-$clients-$round.run"
      done
    done
  done
  trap - EXIT

  report_begin server "Demo server against a peer: broadcast load" <<MD
The load generator (\`crates/heartline-server/examples/loadgen.rs\`: clients
of the socket layer's native driver, all on one thread) against the release
\`heartline-server\` (SQLite file store, history, presence and the room
directory on) and, as the baseline, against a reference broadcast server on
the npm package \`ws\` (\`bench/node-peer/server.js\`, ws pinned in its
\`package-lock.json\`, Node.js $(node --version)): the same protocol subset, no
storage, no history, no presence, no rate limit, one shared Buffer per
broadcast, sockets corked per event-loop turn. All clients join one room;
each sends \`chat.send\` for $secs s at a per-client rate that offers 100,000
deliveries/s (1,000 clients × ${rate[1000]} msg/s, 5,000 clients ×
${rate[5000]} msg/s); every receiver measures the broadcast latency. Servers
alternated, $rounds rounds; medians over rounds (peak RSS and dropped
clients: the largest). A run whose generator did not finish (connect or
drain) counts as failed. The throughput figures: the share of the offered
deliveries that arrived, and deliveries per second of server CPU (user +
system), which is what a server on a shared 2-core machine can give; the
generator's own CPU is shown next to them. Higher loads are not compared:
there the one-thread generator is the bottleneck (it reads 250,000–290,000
deliveries/s from either server), so they would measure the generator.
MD
  local ours ws label o w
  for clients in 1000 5000; do
    label="$clients clients"
    ours=("$BENCH_OUT"/server-ours-"$clients"-*.run)
    ws=("$BENCH_OUT"/server-ws-"$clients"-*.run)
    report_row "$label: every offered delivery arrived, every run" \
      "$(server_all_delivered "${ours[@]}")" "$(server_all_delivered "${ws[@]}") (ws)" "" "scripts/bench server"
    o="$(server_median deliveries_per_cpu_s "${ours[@]}")"
    w="$(server_median deliveries_per_cpu_s "${ws[@]}")"
    report_row "$label: deliveries per server CPU-second (higher is better)" \
      "$(thousands "${o:-failed}")" "$(thousands "${w:-failed}") (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
    o="$(server_median delivered_per_sec "${ours[@]}")"
    w="$(server_median delivered_per_sec "${ws[@]}")"
    report_row "$label: delivered messages/s, first send to last delivery" \
      "$(thousands "${o:-failed}")" "$(thousands "${w:-failed}") (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
    for f in p50 p99; do
      o="$(server_median "$f" "${ours[@]}")"
      w="$(server_median "$f" "${ws[@]}")"
      report_row "$label: broadcast latency $f, ms (lower is better)" \
        "${o:-failed}" "${w:-failed} (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
    done
    o="$(server_max dropped_clients "${ours[@]}")"
    w="$(server_max dropped_clients "${ws[@]}")"
    report_row "$label: clients dropped (lower is better)" "${o:-?}" "${w:-?} (ws)" "" "scripts/bench server"
    o="$(server_max server_rss_kb "${ours[@]}")"
    w="$(server_max server_rss_kb "${ws[@]}")"
    report_row "$label: server peak RSS, MiB (lower is better)" \
      "$(awk -v k="$o" 'BEGIN {printf "%.0f", k / 1024}')" \
      "$(awk -v k="$w" 'BEGIN {printf "%.0f", k / 1024}') (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
    o="$(server_median server_cpu_s "${ours[@]}")"
    w="$(server_median server_cpu_s "${ws[@]}")"
    report_row "$label: server CPU s per run (lower is better)" "${o:-failed}" "${w:-failed} (ws)" \
      "$(ratio "$o" "$w")" "scripts/bench server"
    o="$(server_median loadgen_cpu_s "${ours[@]}")"
    w="$(server_median loadgen_cpu_s "${ws[@]}")"
    report_row "$label: load generator CPU s per run (same generator)" "${o:-failed}" "${w:-failed} (ws)" \
      "" "scripts/bench server"
  done
  local goal all
  o="$(server_median deliveries_per_cpu_s "$BENCH_OUT"/server-ours-5000-*.run)"
  w="$(server_median deliveries_per_cpu_s "$BENCH_OUT"/server-ws-5000-*.run)"
  all="$(server_all_delivered "$BENCH_OUT"/server-ours-5000-*.run)"
  goal="$(awk -v a="$o" -v b="$w" -v all="$all" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "not measured"; else if (a / b >= 1 && all == "yes") print "met"; else print "missed" }')"
  report_text <<MD
Goal, the server at least 1× \`ws\` at 5,000 connections: **$goal** (every
offered delivery arrived in every run: $all; deliveries per server
CPU-second: ours $(thousands "${o:-failed}"), ws $(thousands "${w:-failed}")).
The broadcast latency is not part of this goal; issue 15 is about it. Raw
runs: \`$BENCH_OUT/server-*.run\`.
MD
  report_end
}
