# ---- Section: demo server against a peer, broadcast load -------------------
# The wire-level load generator (crates/heartline-server/examples/
# wire_loadgen.rs) against the release heartline-server and against a
# reference broadcast server on the npm package ws (bench/node-peer/
# server.js, installed with npm ci from its committed package-lock.json):
# a rate sweep at 1,000 clients in one room and one load at 5,000, servers
# alternated, BENCH_SERVER_ROUNDS rounds (2), each round shown. Loopback
# only; every run bounded by `timeout`, every server stopped.
# BENCH_SERVER_BIN runs another heartline-server binary (an older build, for
# a before/after sweep); BENCH_SERVER_SWEEP the per-client rates.

# One run: server_run KIND CLIENTS RATE SECS OUT. KIND is ours or ws. Writes
# the loadgen's JSON line plus the servers' peak RSS and CPU and the
# generator's CPU to OUT as key=value lines ("failed=1" when it timed out).
server_run() {
  local kind="$1" clients="$2" rate="$3" secs="$4" out="$5"
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release" dir pid addr status=0
  local server_bin="${BENCH_SERVER_BIN:-$target/heartline-server}"
  dir="$(mktemp -d)"
  if [ "$kind" = ours ]; then
    "$server_bin" --addr 127.0.0.1:0 --db "$dir/bench.db" --dist "$dir" \
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
  { time timeout $((secs + 60)) "$target/examples/wire_loadgen" --url "ws://$addr/ws" \
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

# server_held FILE BOUND_MS: whether one run held its load: it finished,
# every offered delivery arrived, every message was acked, no client was
# dropped and the p99 was at most BOUND_MS.
server_held() {
  local f="$1" bound="$2" p99
  [ -f "$f" ] && [ "$(server_field "$f" failed)" = 0 ] || return 1
  [ "$(server_field "$f" delivered)" = "$(server_field "$f" expected)" ] || return 1
  [ "$(server_field "$f" acked)" = "$(server_field "$f" sent)" ] || return 1
  [ "$(server_field "$f" dropped_clients)" = 0 ] || return 1
  p99="$(server_field "$f" p99)"
  awk -v p="$p99" -v b="$bound" 'BEGIN { exit !(p != "" && p + 0 <= b + 0) }'
}

# server_ceiling KIND ROUND BOUND_MS: the highest per-client rate of the
# sweep that this server held at BOUND_MS with every lower rate held too
# ("" when not even the lowest).
server_ceiling() {
  local kind="$1" round="$2" bound="$3" rate best=""
  for rate in $SERVER_SWEEP; do
    server_held "$BENCH_OUT/server-sweep-$kind-$rate-$round.run" "$bound" || break
    best="$rate"
  done
  printf '%s\n' "$best"
}

# deliveries RATE: deliveries/s offered at 1,000 clients and RATE msg/s each.
server_offered() { awk -v r="$1" 'BEGIN { printf "%.0f\n", r * 1000 * 1000 }'; }

bench_server() {
  local rounds="${BENCH_SERVER_ROUNDS:-2}" secs="${BENCH_SECONDS:-8}"
  # Per-client rates at 1,000 clients in one room: 100,000 to 4,000,000
  # deliveries/s offered.
  SERVER_SWEEP="${BENCH_SERVER_SWEEP:-0.1 0.3 0.6 0.9 1.2 1.6 2.0 2.5 3.0 3.5 4.0}"
  local rate5000="${BENCH_RATE_5000:-0.02}"
  bench_log "cargo build --release -p heartline-server --bin heartline-server --example wire_loadgen"
  cargo build --release -p heartline-server --bin heartline-server --example wire_loadgen
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
  local round kind order rate i out
  local -A gave_out
  rm -f "$BENCH_OUT"/server-*.run
  for round in $(seq 1 "$rounds"); do
    gave_out=([ours]=0 [ws]=0)
    i=0
    for rate in $SERVER_SWEEP; do
      # Alternate which server goes first, rate by rate and round by round.
      if [ $(((round + i) % 2)) -eq 1 ]; then order="ours ws"; else order="ws ours"; fi
      i=$((i + 1))
      for kind in $order; do
        out="$BENCH_OUT/server-sweep-$kind-$rate-$round.run"
        # A server that did not hold a rate (p99 over 2 s, a delivery
        # missing, a client dropped) is not pushed harder in this round.
        if [ "${gave_out[$kind]}" = 1 ]; then
          bench_log "round $round: $kind, 1000 clients × $rate msg/s: skipped (gave out at a lower rate)"
          continue
        fi
        bench_log "round $round: $kind, 1000 clients × $rate msg/s for $secs s"
        server_run "$kind" 1000 "$rate" "$secs" "$out"
        server_held "$out" 2000 || gave_out[$kind]=1
      done
    done
    if [ $((round % 2)) -eq 1 ]; then order="ours ws"; else order="ws ours"; fi
    for kind in $order; do
      bench_log "round $round: $kind, 5000 clients × $rate5000 msg/s for $secs s"
      server_run "$kind" 5000 "$rate5000" "$secs" "$BENCH_OUT/server-$kind-5000-$round.run"
    done
  done
  trap - EXIT

  report_begin server "Demo server against a peer: broadcast load" <<MD
The wire-level load generator (\`crates/heartline-server/examples/wire_loadgen.rs\`:
one thread, one task per client; it upgrades, says \`hello\`, joins one
room and sends \`chat.send\` on a schedule, reads frames with tungstenite's
frame parser and takes the send time from each \`chat.message\`'s text
without parsing the JSON) against the release \`heartline-server\` (SQLite
file store, history, presence and the room directory on; default worker
threads, one per core) and, as the peer, a reference broadcast server on the
npm package \`ws\` (\`bench/node-peer/server.js\`, ws pinned in its
\`package-lock.json\`, Node.js $(node --version)): the same protocol subset,
no storage, no history, no presence, no rate limit, one shared Buffer per
broadcast, sockets corked per event-loop turn. Everything runs on the same
cores. Each run sends for $secs s and drains for 3 s; every receiver
measures each broadcast's latency (send → stored → fanned out → read).
A load is **held** when every offered delivery arrived, every message was
acked and no client was dropped. The sweep at 1,000 clients rises through
$(echo "$SERVER_SWEEP" | wc -w) per-client rates; the servers alternate rate by rate, and a
server that did not hold a rate within p99 ≤ 2 s is not run at the higher
ones in that round. $rounds rounds, each shown. (The socket-layer generator,
\`loadgen.rs\`, full clients of the native driver, reads at most about
250,000 deliveries/s on one thread: beyond that it measured itself, so
this section no longer uses it; the cluster section still does.)
MD
  local label o w r
  for round in $(seq 1 "$rounds"); do
    o="$BENCH_OUT/server-sweep-ours-0.3-$round.run"
    w="$BENCH_OUT/server-sweep-ws-0.3-$round.run"
    report_row "run $round, 1000 clients × 0.3 msg/s (300,000 deliveries/s): broadcast p99, ms (lower is better)" \
      "$(server_field "$o" p99)" "$(server_field "$w" p99) (ws)" \
      "$(ratio "$(server_field "$o" p99)" "$(server_field "$w" p99)")" "scripts/bench server"
    o="$(server_ceiling ours "$round" 100)"
    w="$(server_ceiling ws "$round" 100)"
    report_row "run $round, 1000 clients: highest load held at p99 ≤ 100 ms, deliveries/s (higher is better)" \
      "$(thousands "$(server_offered "${o:-0}")")" "$(thousands "$(server_offered "${w:-0}")") (ws)" \
      "$(ratio "$(server_offered "${o:-0}")" "$(server_offered "${w:-0}")")" "scripts/bench server"
    o="$(server_ceiling ours "$round" 2000)"
    w="$(server_ceiling ws "$round" 2000)"
    local od="" wd=""
    [ -n "$o" ] && od="$(server_field "$BENCH_OUT/server-sweep-ours-$o-$round.run" delivered_per_sec)"
    [ -n "$w" ] && wd="$(server_field "$BENCH_OUT/server-sweep-ws-$w-$round.run" delivered_per_sec)"
    report_row "run $round, 1000 clients: delivered messages/s at the highest load held at p99 ≤ 2 s (higher is better)" \
      "$(thousands "${od:-none}")" "$(thousands "${wd:-none}") (ws)" "$(ratio "$od" "$wd")" "scripts/bench server"
  done
  local ours ws
  for label in "1000 clients × 0.3 msg/s" "5000 clients × $rate5000 msg/s"; do
    if [ "${label%% *}" = 1000 ]; then
      ours=("$BENCH_OUT"/server-sweep-ours-0.3-*.run)
      ws=("$BENCH_OUT"/server-sweep-ws-0.3-*.run)
    else
      ours=("$BENCH_OUT"/server-ours-5000-*.run)
      ws=("$BENCH_OUT"/server-ws-5000-*.run)
    fi
    report_row "$label: every offered delivery arrived, every run" \
      "$(server_all_delivered "${ours[@]}")" "$(server_all_delivered "${ws[@]}") (ws)" "" "scripts/bench server"
    for r in p50 p99; do
      o="$(server_median "$r" "${ours[@]}")"
      w="$(server_median "$r" "${ws[@]}")"
      report_row "$label: broadcast latency $r, ms, median of runs (lower is better)" \
        "${o:-failed}" "${w:-failed} (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
    done
    o="$(server_median deliveries_per_cpu_s "${ours[@]}")"
    w="$(server_median deliveries_per_cpu_s "${ws[@]}")"
    report_row "$label: deliveries per server CPU-second (higher is better)" \
      "$(thousands "${o:-failed}")" "$(thousands "${w:-failed}") (ws)" "$(ratio "$o" "$w")" "scripts/bench server"
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

  server_sweep_table "$rounds" | report_text
  server_goals "$rounds" | report_text
  report_text <"$ROOT/bench/server-latency.md"
  report_end
}

# server_cell FILE: "p50 / p99 ms" of a run, with what went wrong if it
# did not hold ("–" when it was not run).
server_cell() {
  local f="$1" note=""
  [ -f "$f" ] || { printf '–'; return; }
  if [ "$(server_field "$f" failed)" != 0 ]; then printf 'did not finish'; return; fi
  local d e dr
  d="$(server_field "$f" delivered)"
  e="$(server_field "$f" expected)"
  dr="$(server_field "$f" dropped_clients)"
  [ "$d" = "$e" ] || note=", $(awk -v d="$d" -v e="$e" 'BEGIN { printf "%.1f", 100 * d / e }') % delivered"
  [ "$dr" = 0 ] || note="$note, $dr dropped"
  printf '%s / %s%s' "$(server_field "$f" p50)" "$(server_field "$f" p99)" "$note"
}

# server_cpu_cell FILE: "server / generator" CPU seconds of a run.
server_cpu_cell() {
  [ -f "$1" ] || { printf '–'; return; }
  printf '%s / %s' "$(server_field "$1" server_cpu_s)" "$(server_field "$1" loadgen_cpu_s)"
}

# server_sweep_table ROUNDS: the sweep, one row per rate and round.
server_sweep_table() {
  local rounds="$1" rate round o w
  printf 'The sweep at 1,000 clients: broadcast latency p50 / p99 in ms, and CPU\n'
  printf 'seconds per run of the server / of the generator (the same generator\n'
  printf 'for both servers; a whole run lasts about %s s plus connecting).\n\n' "$((${BENCH_SECONDS:-8} + 4))"
  printf '| offered deliveries/s | run | ours p50 / p99 | ws p50 / p99 | ours CPU s | ws CPU s |\n'
  printf '|---:|---:|---:|---:|---:|---:|\n'
  for rate in $SERVER_SWEEP; do
    for round in $(seq 1 "$rounds"); do
      o="$BENCH_OUT/server-sweep-ours-$rate-$round.run"
      w="$BENCH_OUT/server-sweep-ws-$rate-$round.run"
      printf '| %s | %s | %s | %s | %s | %s |\n' "$(thousands "$(server_offered "$rate")")" "$round" \
        "$(server_cell "$o")" "$(server_cell "$w")" "$(server_cpu_cell "$o")" "$(server_cpu_cell "$w")"
    done
  done
}

# server_goals ROUNDS: issue 15's three targets, run by run.
server_goals() {
  local rounds="$1" round o w od wd a b c
  printf "Issue 15's targets at 1,000 clients, run by run:\n\n"
  for round in $(seq 1 "$rounds"); do
    o="$(server_field "$BENCH_OUT/server-sweep-ours-0.3-$round.run" p99)"
    w="$(server_field "$BENCH_OUT/server-sweep-ws-0.3-$round.run" p99)"
    a="$(awk -v o="$o" -v w="$w" 'BEGIN { print (o != "" && w != "" && o + 0 <= w + 0) ? "met" : "missed" }')"
    server_held "$BENCH_OUT/server-sweep-ours-0.3-$round.run" 2000 || a=missed
    local oc wc
    oc="$(server_ceiling ours "$round" 100)"
    wc="$(server_ceiling ws "$round" 100)"
    b="$(awk -v o="${oc:-0}" -v w="${wc:-0}" 'BEGIN { print (o + 0 > 0 && o + 0 >= w + 0) ? "met" : "missed" }')"
    oc="$(server_ceiling ours "$round" 2000)"
    wc="$(server_ceiling ws "$round" 2000)"
    od=""
    wd=""
    [ -n "$oc" ] && od="$(server_field "$BENCH_OUT/server-sweep-ours-$oc-$round.run" delivered_per_sec)"
    [ -n "$wc" ] && wd="$(server_field "$BENCH_OUT/server-sweep-ws-$wc-$round.run" delivered_per_sec)"
    c="$(awk -v o="$od" -v w="$wd" 'BEGIN { print (o != "" && (w == "" || o + 0 >= 1.5 * w)) ? "met" : "missed" }')"
    # The top of the sweep held: the ceiling is at least that, not measured.
    local top
    top="$(echo "$SERVER_SWEEP" | awk '{print $NF}')"
    od="$(thousands "${od:-none}")"
    [ "$oc" = "$top" ] && od="$od (the sweep's top: the ceiling is higher)"
    printf -- '- run %s: p99 at 300,000 deliveries/s at most the peer'"'"'s (%s ≤ %s ms): **%s**; highest load at p99 ≤ 100 ms at least the peer'"'"'s: **%s**; at p99 ≤ 2 s, at least 1.5× the peer'"'"'s messages/s (%s vs %s): **%s**.\n' \
      "$round" "${o:-?}" "${w:-?}" "$a" "$b" "$od" "$(thousands "${wd:-none}")" "$c"
  done
  printf '\nRaw runs: `%s/server-*.run`.\n' "$BENCH_OUT"
}
