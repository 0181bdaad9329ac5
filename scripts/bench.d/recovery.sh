# ---- Section: recovery after a server restart and a stalled link -------------
# The release app (trunk build --release) in headless Chromium, served by the
# release server through the fault proxy (crates/heartline-e2e Stack and
# Browser), driven by crates/heartline-bench/src/bin/bench-recovery.rs:
# 20 server kill -9 + restarts with messages typed while it is down, timed from
# the server being back to the banner connected and the outbox drained; and
# 5 stalls (connection open, nothing passes) timed to the link declared dead.

# recovery_value KEY FILE: the value of the `KEY=value` line of FILE.
recovery_value() { sed -n "s/^$1=//p" "$2" | tail -n 1; }

# recovery_run_bounded SECONDS OUT LOG COMMAND...: runs COMMAND in its own
# process group, stdout to OUT, stderr to LOG and the terminal; past SECONDS,
# or if this script is interrupted, the whole group (the driver, and the
# server, proxy, chromedriver and Chromium it started) is killed.
recovery_run_bounded() {
  local seconds="$1" out="$2" log="$3"
  shift 3
  setsid "$@" >"$out" 2> >(tee "$log" >&2) &
  local pid=$! deadline=$((SECONDS + seconds)) status=0
  # shellcheck disable=SC2064 # the pid is meant to be expanded now
  trap "kill -KILL -- -$pid 2>/dev/null" INT TERM EXIT
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      bench_log "$1 ran past ${seconds} s: stopping it"
      kill -TERM -- "-$pid" 2>/dev/null || true
      sleep 2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  wait "$pid" || status=$?
  # The driver is gone; whatever it started is stopped with its group.
  kill -KILL -- "-$pid" 2>/dev/null || true
  trap - INT TERM EXIT
  return "$status"
}

# The release app, built once per source state: the directory is keyed by
# the committed trees and the uncommitted changes of what the app is built from,
# so a warm run reuses it and any change rebuilds it. Sets RECOVERY_APP_DIST.
RECOVERY_APP_DIST=""
recovery_app_dist() {
  [ -n "$RECOVERY_APP_DIST" ] && [ -d "$RECOVERY_APP_DIST" ] && return 0
  ensure_web_toolchain
  local sources=(src index.html Trunk.toml Cargo.toml Cargo.lock styles assets
    crates/heartline crates/heartline-protocol)
  local key
  key="$({
    git -C "$ROOT" ls-tree HEAD -- "${sources[@]}"
    git -C "$ROOT" status --porcelain --untracked-files=all -- "${sources[@]}"
    git -C "$ROOT" diff HEAD -- "${sources[@]}"
    git -C "$ROOT" ls-files --others --exclude-standard -z -- "${sources[@]}" |
      xargs -0 -r cat
  } | sha256sum | cut -c1-16)"
  local dist="$BENCH_OUT/app-dist/$key"
  if [ ! -f "$dist/index.html" ]; then
    local tmp="$BENCH_OUT/app-dist/building.$$"
    rm -rf "$tmp" && mkdir -p "$BENCH_OUT/app-dist"
    bench_log "trunk build --release --dist $tmp"
    trunk build --release --dist "$tmp" >"$BENCH_OUT/app-dist.log" 2>&1 ||
      { tail -n 30 "$BENCH_OUT/app-dist.log" >&2; die "trunk build failed ($BENCH_OUT/app-dist.log)"; }
    # Only the newest build is kept.
    find "$BENCH_OUT/app-dist" -mindepth 1 -maxdepth 1 -not -name "building.$$" -exec rm -rf {} +
    mv "$tmp" "$dist"
  else
    bench_log "the release app of this source state is built already ($dist)"
  fi
  RECOVERY_APP_DIST="$dist"
}

# The release server, fault proxy and the browser drivers of this section and
# of memory.sh.
recovery_drivers() {
  ensure_browser
  bench_log "cargo build --release (server, fault proxy, bench-recovery, bench-memory)"
  cargo build --locked --release -q \
    -p heartline-server --bin heartline-server \
    -p heartline-faultproxy --bin heartline-faultproxy \
    -p heartline-bench --bin bench-recovery --bin bench-memory
}

bench_recovery() {
  recovery_app_dist
  recovery_drivers
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  local out="$BENCH_OUT/recovery.txt" restarts="${BENCH_RESTARTS:-20}" stalls="${BENCH_STALLS:-5}"
  local cmd="bench-recovery --restarts $restarts --stalls $stalls --heartbeat-ms 2000 --timeout-ms 1000"
  bench_log "$cmd"
  # Bounded: every wait has a 30 s deadline, and the whole run 5 minutes.
  recovery_run_bounded 300 "$out" "$BENCH_OUT/recovery.log" \
    "$target/bench-recovery" --dist "$RECOVERY_APP_DIST" --bin-dir "$target" \
    --restarts "$restarts" --stalls "$stalls" --heartbeat-ms 2000 --timeout-ms 1000 ||
    die "bench-recovery failed (log: $BENCH_OUT/recovery.log)"
  local v
  for v in connected_ms_median connected_ms_max drained_ms_median drained_ms_max \
    bound_ms_median bound_ms_max drained_over_bound down_ms_median down_ms_max typed typed_acked_once \
    backoff_base_ms backoff_factor backoff_cap_ms backoff_jitter min_uptime_ms \
    stall_ms_median stall_ms_max stall_bound_ms heartbeat_ms timeout_ms; do
    local "$v"
    printf -v "$v" '%s' "$(recovery_value "$v" "$out")"
    [ -n "${!v}" ] || die "bench-recovery printed no $v ($out)"
  done
  report_begin recovery "Recovery: server restarts and stalled links" <<MD
The release app (\`trunk build --release\`) in headless Chromium, served by the
release server through the fault proxy, the chat room open
(\`crates/heartline-bench/src/bin/bench-recovery.rs\`).

**Server restarts**, with the app's **default socket config** (backoff
$backoff_base_ms ms × $backoff_factor, $backoff_jitter jitter, cap
$(thousands "$backoff_cap_ms") ms; the retry counter resets after $(thousands "$min_uptime_ms") ms up,
\`min_uptime\`, so the link is left up that long before each kill): $restarts
times the server is killed (\`kill -9\`), two messages are typed in the chat
while it is down (outage median $down_ms_median ms, max $down_ms_max ms), and
it is started again. Timed from the server being back (its ready file
written, the listener bound) to the banner saying connected
(\`data-status="open"\`), and to the outbox drained (connected,
\`data-waiting="0"\`, no pending message in the chat), stamped in the page by
a \`MutationObserver\` (not by WebDriver polling). The baseline is what the
backoff policy bounds it to for that outage: the client is then waiting out
some retry's delay, and that retry is at most the first one whose
*shortest* jittered delays add up to the outage; its *longest* delay is the
bound (opening the socket, \`hello\` and the acks come on top). The policy's
absolute worst case, after a long outage, is the cap, $(thousands "$backoff_cap_ms") ms.

**Stalled link**: the proxy keeps the connection open and passes nothing;
timed from the stall to the banner leaving \`open\` (the link declared dead),
$stalls stalls spread over the heartbeat phase, with
\`heartbeat_ms=$heartbeat_ms timeout_ms=$timeout_ms\` in the page's
\`<meta name="heartline-config">\`. The baseline is the configured
interval + timeout: a ping goes out after \`interval\` without any frame and
the link is declared dead \`timeout\` after it, so a link that falls silent is
declared dead within interval + timeout of its last frame.
MD
  local rcmd="scripts/bench recovery"
  report_row "server back → banner connected, median of $restarts restarts, ms (lower is better)" \
    "$connected_ms_median" "$bound_ms_median (backoff bound)" "$(ratio "$connected_ms_median" "$bound_ms_median")" "$rcmd"
  report_row "server back → banner connected, max of $restarts restarts, ms (lower is better)" \
    "$connected_ms_max" "$bound_ms_max (backoff bound)" "$(ratio "$connected_ms_max" "$bound_ms_max")" "$rcmd"
  report_row "server back → connected and outbox drained, median, ms (lower is better)" \
    "$drained_ms_median" "$bound_ms_median (backoff bound)" "$(ratio "$drained_ms_median" "$bound_ms_median")" "$rcmd"
  report_row "server back → connected and outbox drained, max, ms (lower is better)" \
    "$drained_ms_max" "$bound_ms_max (backoff bound)" "$(ratio "$drained_ms_max" "$bound_ms_max")" "$rcmd"
  report_row "messages typed while down, acked and shown exactly once (higher is better)" \
    "$typed_acked_once" "$typed (typed)" "$(ratio "$typed_acked_once" "$typed")" "$rcmd"
  report_row "stalled link → declared dead, median of $stalls, ms (lower is better)" \
    "$stall_ms_median" "$stall_bound_ms (interval $heartbeat_ms + timeout $timeout_ms)" \
    "$(ratio "$stall_ms_median" "$stall_bound_ms")" "$rcmd"
  report_row "stalled link → declared dead, max of $stalls, ms (lower is better)" \
    "$stall_ms_max" "$stall_bound_ms (interval $heartbeat_ms + timeout $timeout_ms)" \
    "$(ratio "$stall_ms_max" "$stall_bound_ms")" "$rcmd"
  local within_stall
  within_stall="$(awk -v a="$stall_ms_max" -v b="$stall_bound_ms" 'BEGIN { print (a <= b) ? "within" : "over" }')"
  report_text <<MD
Every restart recovered with the messages typed during the outage acked and
shown once ($typed_acked_once of $typed). In $drained_over_bound of the
$restarts restarts the time to connected *and drained* (reconnect handshake
and acks included) went past the backoff bound of that outage: a ratio ≤ 1×
means the socket layer adds nothing beyond the wait its policy prescribes.
The slowest stall detection is $within_stall interval + timeout. A stall is caught a little under the bound because the last frame
the page received came before the stall began.
MD
  report_end
}
