# ---- Section: the dashboard under load ---------------------------------------
# The release app's /dashboard in headless Chromium, served by release
# heartline-servers started with --metrics-load-rate R (100, 1,000, 5,000
# metrics.sample frames a second to the subscribed page) and one without it
# (the idle baseline: one sample a second). The driver
# (crates/heartline-bench/src/bin/bench-ui.rs) measures each variant in turn,
# BENCH_UI_ROUNDS rounds (2) of BENCH_UI_WINDOW seconds (5) each, from the
# page's requestAnimationFrame timestamps, a `longtask` PerformanceObserver
# and DevTools Performance.getMetrics. Loopback only; the driver stops its
# browser and servers itself, within its own deadline.

# ui_value KEY: the value of KEY= in the driver's output.
ui_value() {
  sed -n "s/^$1=//p" "$BENCH_OUT/ui.txt" | head -n 1
}

# ui_tasks VARIANT: "N · longest X ms" ("0 · none").
ui_tasks() {
  local count longest
  count="$(ui_value "$1.long_tasks")"
  longest="$(ui_value "$1.longest_task_ms")"
  if [ "${count:-0}" -eq 0 ]; then
    printf '0 · none'
  else
    printf '%s · longest %s ms' "$count" "$longest"
  fi
}

bench_ui() {
  local rates="${BENCH_UI_RATES:-100,1000,5000}" rounds="${BENCH_UI_ROUNDS:-2}"
  local window="${BENCH_UI_WINDOW:-5}"
  ensure_web_toolchain
  ensure_browser
  # The release app, built once per source state and shared with the
  # recovery and memory sections (recovery_app_dist, scripts/bench.d/recovery.sh).
  recovery_app_dist
  bench_log "cargo build --release (server, fault proxy, bench-ui)"
  # One --bin per package: `-p a -p b --bin x` would skip packages without x.
  cargo build --locked --release \
    -p heartline-server --bin heartline-server \
    -p heartline-faultproxy --bin heartline-faultproxy \
    -p heartline-bench --bin bench-ui
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  local cmd="bench-ui --rates $rates --rounds $rounds --window-secs $window"
  bench_log "$cmd"
  local started=$SECONDS
  timeout 300 "$target/bench-ui" --dist "$RECOVERY_APP_DIST" --bin-dir "$target" \
    --rates "$rates" --rounds "$rounds" --window-secs "$window" \
    >"$BENCH_OUT/ui.txt" 2> >(tee "$BENCH_OUT/ui.log" >&2) ||
    die "bench-ui failed (log: $BENCH_OUT/ui.log)"
  local took=$((SECONDS - started))

  local idle_fps idle_busy idle_worst
  idle_fps="$(ui_value idle.fps)"
  idle_busy="$(ui_value idle.busy_percent)"
  idle_worst="$(ui_value idle.worst_frame_ms)"
  report_begin ui "Dashboard under load (headless Chromium)" <<MD
The release app's \`/dashboard\` (six live SVG charts) in headless Chromium
(1280×800), served by a release \`heartline-server\` started with
\`--metrics-load-rate R\`, a load-testing knob that sends R \`metrics.sample\`
frames a second to each subscriber (the latest host reading, re-stamped, with
the server's own counters read afresh; off by default, clients can only ask for
slower samples). The baseline is the same page on a server without the knob
(one sample a second), measured in the same run: each variant in turn,
$rounds rounds (the order reversed every other round), $window s windows
after 1 s of settling. Frames per second come from \`requestAnimationFrame\`
timestamps over the window (mean of the rounds, lowest round in brackets);
long tasks from a \`longtask\` PerformanceObserver (checked first to report a
deliberate 80 ms task); main-thread busy share from DevTools
\`Performance.getMetrics\` (\`TaskDuration\`). Headless Chromium here runs
\`requestAnimationFrame\` at 60 Hz with no extra flags (the idle baseline).
Messages received are counted by a listener on the page's WebSocket.
MD
  local rate key fps fps_min got busy
  for rate in ${rates//,/ }; do
    key="r$rate"
    fps="$(ui_value "$key.fps")"
    fps_min="$(ui_value "$key.fps_min")"
    got="$(ui_value "$key.messages_per_sec")"
    busy="$(ui_value "$key.busy_percent")"
    report_row "frames/s at $(thousands "$rate") msg/s (higher is better; $(thousands "$got") msg/s received)" \
      "$fps ($fps_min)" "$idle_fps ($(ui_value idle.fps_min)) idle" "$(ratio "$fps" "$idle_fps")" "$cmd"
    report_row "long tasks > 50 ms at $(thousands "$rate") msg/s, count · longest (lower is better; ratio: worst frame gap)" \
      "$(ui_tasks "$key") · worst frame $(ui_value "$key.worst_frame_ms") ms" \
      "$(ui_tasks idle) · worst frame $idle_worst ms idle" \
      "$(ratio "$(ui_value "$key.worst_frame_ms")" "$idle_worst")" "$cmd"
    report_row "main thread busy at $(thousands "$rate") msg/s, % of the window (lower is better)" \
      "$busy % ($(ui_value "$key.script_percent") % script, $(ui_value "$key.path_updates_per_sec") path updates/s)" \
      "$idle_busy % ($(ui_value idle.script_percent) % script) idle" "$(ratio "$busy" "$idle_busy")" "$cmd"
  done

  local top="${rates##*,}" verdict
  if awk -v f="$(ui_value "r$top.fps")" -v n="$(ui_value "r$top.long_tasks")" \
    'BEGIN { exit !(f >= 55 && n == 0) }'; then
    verdict="**holds**"
  else
    verdict="**is missed**"
  fi
  report_text <<MD
Goal: at least 55 fps at $(thousands "$top") msg/s with no long task over 50 ms: $verdict
in this run ($(ui_value "r$top.fps") fps, lowest round $(ui_value "r$top.fps_min"),
$(ui_tasks "r$top"), worst frame gap $(ui_value "r$top.worst_frame_ms") ms,
$(ui_value "r$top.reconnects") reconnects). The dashboard folds every sample
into its 60-sample window as it arrives (\`use_message_fold\`) and renders at
most once per animation frame; a chart re-renders only when its series
changed. Under load the samples between two host readings repeat the host
figures, so mostly the server-frames chart and the summary redraw; the
100 msg/s row redraws the most (its 60-sample window turns over in 0.6 s).
The cost that grows with the rate is per message (the browser's WebSocket
delivery, JSON parsing and dispatch in wasm, the fold):
$(ui_value "r$top.task_us_per_message") µs of main-thread time per message at
$(thousands "$top") msg/s. Measuring took $took s.
MD
  report_end
}
