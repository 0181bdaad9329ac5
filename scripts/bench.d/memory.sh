# ---- Section: memory of the page and of the server ---------------------------
# crates/heartline-bench/src/bin/bench-memory.rs: the release app in headless
# Chromium through the fault proxy (JS heap after a forced GC, wasm memory,
# DOM nodes, listeners, live WebSocket objects) freshly loaded, after 10 and
# 100 reconnects and after 10,000 chat messages; the release server's VmRSS
# with 2,000 idle connections and across 10,000 connect/close cycles.
# Shares recovery_app_dist, recovery_drivers, recovery_run_bounded and
# recovery_value with recovery.sh (scripts/bench sources every section file).

# memory_size BYTES: "1.23 MiB" (or KiB under a MiB).
memory_size() {
  awk -v b="$1" 'BEGIN {
    if (b == "") { print "n/a"; exit }
    if (b >= 1048576) printf "%.2f MiB\n", b / 1048576; else printf "%.1f KiB\n", b / 1024 }'
}

bench_memory() {
  recovery_app_dist
  recovery_drivers
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  local out="$BENCH_OUT/memory.txt"
  local reconnects="${BENCH_RECONNECTS:-100}" messages="${BENCH_MESSAGES:-10000}"
  local idle="${BENCH_IDLE:-2000}" cycles="${BENCH_CYCLES:-10000}"
  # Each idle connection is a socket here and one in the server.
  local need=$((idle + 512)) soft
  soft="$(ulimit -n)"
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  fi
  local cmd="bench-memory --reconnects $reconnects --messages $messages --idle $idle --cycles $cycles"
  bench_log "$cmd"
  # Bounded: every wait has a 120 s deadline, and the whole run 5 minutes.
  recovery_run_bounded 300 "$out" "$BENCH_OUT/memory.log" \
    "$target/bench-memory" --dist "$RECOVERY_APP_DIST" --bin-dir "$target" \
    --reconnects "$reconnects" --messages "$messages" --idle "$idle" --cycles "$cycles" ||
    die "bench-memory failed (log: $BENCH_OUT/memory.log)"
  local r10="page_reconnects_$((reconnects < 10 ? reconnects : 10))" rn="page_reconnects_$reconnects"
  local v
  for v in page_fresh_js_used page_fresh_wasm page_fresh_nodes page_fresh_listeners page_fresh_sockets \
    page_fresh_objects "${r10}_js_used" "${rn}_js_used" "${rn}_wasm" "${rn}_nodes" "${rn}_listeners" \
    "${rn}_sockets" "${rn}_objects" "${r10}_objects" page_reloaded_js_used page_reloaded_wasm \
    page_reloaded_nodes page_messages_js_used page_messages_wasm page_messages_nodes \
    messages_shown_after_ms page_settings server_fresh_rss server_idle_rss server_idle_closed_rss \
    server_cycles_before_rss server_cycles_after_rss warmup_cycles cycles_ms; do
    [ -n "$(recovery_value "$v" "$out")" ] || die "bench-memory printed no $v ($out)"
  done
  memory_value() { recovery_value "$1" "$out"; }
  local per_conn
  per_conn="$(awk -v a="$(memory_value server_idle_rss)" -v b="$(memory_value server_fresh_rss)" -v n="$idle" 'BEGIN { printf "%.0f\n", (a - b) / n }')"
  report_begin memory "Memory: page and server, across reconnects" <<MD
**Page**: the release app in headless Chromium through the fault proxy, the
chat room open (\`crates/heartline-bench/src/bin/bench-memory.rs\`). Each
reading comes after a forced GC (DevTools \`HeapProfiler.collectGarbage\`,
twice): the JS heap (\`Runtime.getHeapUsage\` used size), the wasm linear
memory (\`memory.buffer.byteLength\` of the module's exports, from trunk's
\`TrunkApplicationStarted\` event), DOM nodes and JS event listeners
(\`Performance.getMetrics\`), and the \`WebSocket\` and plain objects alive
(\`Runtime.queryObjects\`). The baseline is the same page freshly loaded and
connected. Reconnects: the proxy cuts the link and restores it, $reconnects
times, each waited for until the banner says connected again (with
\`$(memory_value page_settings)\` in the page's config so that a hundred cuts take
seconds, not the default policy's growing waits). Messages: the page is
reloaded, then a native client sends $messages chat messages into the room,
all rendered in the page (shown $(memory_value messages_shown_after_ms) ms after the
last ack). The page is polled through DevTools \`Runtime.evaluate\`, not
WebDriver's execute, which leaves an array and an object in the page's heap on
every call (measured: +200 objects for 200 calls) and would read as a leak.

**Server**: the release server's \`VmRSS\` (\`/proc/<pid>/status\`) with
native WebSocket clients straight to it (tokio-tungstenite, each says
\`hello\`): fresh, then with $idle idle connections; then, restarted (a
fresh process), before and after $cycles connect/\`hello\`/close cycles, 32
at a time, each worker presenting its token again as a reconnecting client
does ("before" is after $(memory_value warmup_cycles) warm-up cycles; the $cycles took
$(memory_value cycles_ms) ms).
MD
  local c="scripts/bench memory"
  report_row "page JS heap after $reconnects reconnects (lower is better)" \
    "$(memory_size "$(memory_value "${rn}_js_used")")" "$(memory_size "$(memory_value page_fresh_js_used)") (fresh)" \
    "$(ratio "$(memory_value "${rn}_js_used")" "$(memory_value page_fresh_js_used)")" "$c"
  report_row "page JS heap after $reconnects reconnects, against after 10 (growth after warm-up; lower is better)" \
    "$(memory_size "$(memory_value "${rn}_js_used")")" "$(memory_size "$(memory_value "${r10}_js_used")") (10 reconnects)" \
    "$(ratio "$(memory_value "${rn}_js_used")" "$(memory_value "${r10}_js_used")")" "$c"
  report_row "page wasm memory after $reconnects reconnects (lower is better)" \
    "$(memory_size "$(memory_value "${rn}_wasm")")" "$(memory_size "$(memory_value page_fresh_wasm)") (fresh)" \
    "$(ratio "$(memory_value "${rn}_wasm")" "$(memory_value page_fresh_wasm)")" "$c"
  report_row "page WebSocket objects alive after $reconnects reconnects (lower is better)" \
    "$(memory_value "${rn}_sockets")" "$(memory_value page_fresh_sockets) (fresh)" \
    "$(ratio "$(memory_value "${rn}_sockets")" "$(memory_value page_fresh_sockets)")" "$c"
  report_row "page plain objects alive after $reconnects reconnects (lower is better)" \
    "$(thousands "$(memory_value "${rn}_objects")")" "$(thousands "$(memory_value page_fresh_objects)") (fresh)" \
    "$(ratio "$(memory_value "${rn}_objects")" "$(memory_value page_fresh_objects)")" "$c"
  report_row "page JS event listeners after $reconnects reconnects (lower is better)" \
    "$(memory_value "${rn}_listeners")" "$(memory_value page_fresh_listeners) (fresh)" \
    "$(ratio "$(memory_value "${rn}_listeners")" "$(memory_value page_fresh_listeners)")" "$c"
  report_row "page DOM nodes after $reconnects reconnects (lower is better)" \
    "$(memory_value "${rn}_nodes")" "$(memory_value page_fresh_nodes) (fresh)" \
    "$(ratio "$(memory_value "${rn}_nodes")" "$(memory_value page_fresh_nodes)")" "$c"
  report_row "page JS heap after $(thousands "$messages") messages (lower is better)" \
    "$(memory_size "$(memory_value page_messages_js_used)")" "$(memory_size "$(memory_value page_reloaded_js_used)") (fresh)" \
    "$(ratio "$(memory_value page_messages_js_used)" "$(memory_value page_reloaded_js_used)")" "$c"
  report_row "page wasm memory after $(thousands "$messages") messages (lower is better)" \
    "$(memory_size "$(memory_value page_messages_wasm)")" "$(memory_size "$(memory_value page_reloaded_wasm)") (fresh)" \
    "$(ratio "$(memory_value page_messages_wasm)" "$(memory_value page_reloaded_wasm)")" "$c"
  report_row "page DOM nodes after $(thousands "$messages") messages (lower is better)" \
    "$(thousands "$(memory_value page_messages_nodes)")" "$(memory_value page_reloaded_nodes) (fresh)" \
    "$(ratio "$(memory_value page_messages_nodes)" "$(memory_value page_reloaded_nodes)")" "$c"
  report_row "server RSS with $(thousands "$idle") idle connections (lower is better)" \
    "$(memory_size "$(memory_value server_idle_rss)")" "$(memory_size "$(memory_value server_fresh_rss)") (no connection)" \
    "$(ratio "$(memory_value server_idle_rss)" "$(memory_value server_fresh_rss)")" "$c"
  report_row "server RSS per idle connection (lower is better)" \
    "$(memory_size "$per_conn")" "" "" "$c"
  report_row "server RSS after the $(thousands "$idle") idle connections closed (lower is better)" \
    "$(memory_size "$(memory_value server_idle_closed_rss)")" "$(memory_size "$(memory_value server_idle_rss)") (while open)" \
    "$(ratio "$(memory_value server_idle_closed_rss)" "$(memory_value server_idle_rss)")" "$c"
  report_row "server RSS after $(thousands "$cycles") connect/close cycles (lower is better)" \
    "$(memory_size "$(memory_value server_cycles_after_rss)")" "$(memory_size "$(memory_value server_cycles_before_rss)") (before)" \
    "$(ratio "$(memory_value server_cycles_after_rss)" "$(memory_value server_cycles_before_rss)")" "$c"
  local page_growth server_growth
  page_growth="$(awk -v a="$(memory_value "${rn}_js_used")" -v b="$(memory_value "${r10}_js_used")" -v n="$((reconnects - 10))" \
    'BEGIN { printf "%.0f", (n > 0) ? (a - b) / n : 0 }')"
  server_growth="$(awk -v a="$(memory_value server_cycles_after_rss)" -v b="$(memory_value server_cycles_before_rss)" -v n="$cycles" \
    'BEGIN { printf "%.1f", (a - b) / n }')"
  report_text <<MD
Across reconnects the page keeps one \`WebSocket\` object, the same event
listeners, DOM nodes and plain objects, and its wasm memory does not grow
(linear memory only grows, so this is also its high-water mark). The JS heap
grows by a few tens of KiB over the first ten reconnects and then by
$page_growth bytes per reconnect on average up to $reconnects, with no
object count growing: V8's code and feedback for the reconnect path warming
up, not something kept per reconnect (probed further to 400 reconnects, the
growth per reconnect keeps falling: about 180, 70 and 35 bytes per reconnect
over 10–100, 100–200 and 200–400). The server's resident memory across
connect/close cycles grows by $server_growth bytes per cycle after the
warm-up, and that is a plateau, not state kept per connection: probed with
40,000 cycles (after 4,000 to warm up) it grew by 268 KiB, no more than over
10,000 (316 KiB in the same probe). Once the idle connections close, the allocator keeps most of their
pages (RSS does not fall back) and reuses them. The $(thousands "$messages")
messages are all kept and rendered by the chat view (it has no cap on a
room's shown history), which is what the wasm memory and DOM figures after
them show.
MD
  report_end
}
