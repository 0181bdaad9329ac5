# ---- Section: the release bundle's size -------------------------------------
# `trunk build --release` into a temp dir (wasm-opt as Trunk.toml and
# index.html set it), then every file's raw, gzip -9 and brotli -q 11 size,
# and the totals. Sizes are exact for a given build; no timing involved.
bench_bundle() {
  ensure_web_toolchain
  command -v brotli >/dev/null || apt_install brotli
  local dist
  dist="$(mktemp -d "${TMPDIR:-/tmp}/heartline-bundle.XXXXXX")"
  bench_log "trunk build --release --dist $dist"
  trunk build --release --dist "$dist" >/dev/null 2>&1 || { trunk build --release --dist "$dist"; exit 1; }
  local raw=0 gz=0 br=0 f
  for f in "$dist"/*; do
    raw=$((raw + $(stat -c %s "$f")))
    gz=$((gz + $(gzip -9c "$f" | wc -c)))
    br=$((br + $(brotli -q 11 -c "$f" | wc -c)))
  done
  rm -rf "$dist"
  report_begin bundle "Release bundle size (dist/)" <<'MD'
The files `trunk build --release` writes (wasm after wasm-bindgen and
wasm-opt, the JS glue, CSS, HTML, icon), summed raw, gzip -9 and brotli -q 11.
Exact for a given build; no timing.
MD
  report_row "app dist/, bytes raw (lower is better)" "$(thousands $raw)" "" "" "scripts/bench bundle"
  report_row "app dist/, bytes gzip -9" "$(thousands $gz)" "" "" "scripts/bench bundle"
  report_row "app dist/, bytes brotli -q 11" "$(thousands $br)" "" "" "scripts/bench bundle"
  report_end
}
