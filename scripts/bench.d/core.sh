# ---- Section: socket core, inbound parse + dispatch -------------------------
# Frames fed to the sans-IO core as events, parsed once, sequenced and
# dispatched to handlers through the Registry (crates/heartline/benches/inbound.rs),
# against serde_json parsing the same frames into Values and nothing else.

# criterion_rate NAME < output: the middle throughput estimate of benchmark
# NAME ("thrpt: [low mid high]", e.g. "1.0397 Melem/s 1.0456 Melem/s ...")
# as a plain number per second.
criterion_rate() {
  awk -v name="$1" '
    index($0, name) == 1 { on = 1 }
    on && /thrpt:/ {
      sub(/.*thrpt: *\[/, ""); split($0, f, " ")
      m = 1; u = f[4]
      if (u ~ /^K/) m = 1e3; else if (u ~ /^M/) m = 1e6; else if (u ~ /^G/) m = 1e9
      printf "%.0f\n", f[3] * m; exit }'
}

bench_core() {
  local cmd="cargo bench -p heartline --bench inbound"
  bench_log "$cmd"
  $cmd 2>&1 | tee "$BENCH_OUT/core.log" >&2
  local layer parse
  layer="$(criterion_rate inbound/parse_dispatch <"$BENCH_OUT/core.log")"
  parse="$(criterion_rate inbound/parse_only <"$BENCH_OUT/core.log")"
  [ -n "$layer" ] && [ -n "$parse" ] || die "no throughput in the criterion output ($BENCH_OUT/core.log)"
  report_begin core "Socket core: inbound parse + dispatch" <<'MD'
Text frames fed to the sans-IO core (`Connection::handle` with
`Event::Frame`): parsed once into JSON, sequenced (chat stream
de-duplication and ordering) and dispatched through the `Registry` to one
handler per type. The mix is 60 % `chat.message` (~150 bytes), 20 %
`metrics.sample` (~330 bytes) and 20 % `presence`, in batches of 1,000 on a
fresh open connection (`crates/heartline/benches/inbound.rs`, criterion,
native, bench profile). The baseline is `serde_json::from_str::<Value>` on
the same frames and nothing else: the ratio is the share of bare parsing
speed the whole inbound path keeps.
MD
  report_row "inbound parse + dispatch, messages/s (higher is better)" \
    "$(thousands "$layer")" "$(thousands "$parse") (parse only)" "$(ratio "$layer" "$parse")" "$cmd"
  report_end
}
