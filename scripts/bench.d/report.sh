# The report every section writes: one table per section in BENCHMARKS.md,
# between <!-- bench:NAME --> and <!-- /bench:NAME -->. Sourced by
# scripts/bench. A section calls, in order:
#
#   report_begin NAME "Title" <<'MD'
#   What it measures, how, and what the baseline is (markdown).
#   MD
#   report_row "figure" "value" "baseline" "ratio" "command"   # once a row
#   report_text <<'MD'                                         # optional
#   A paragraph after the table (findings, goals met or missed).
#   MD
#   report_end
#
# report_end splices the section into BENCHMARKS.md, keeping the others.

BENCH_OUT="${BENCH_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench}"
BENCH_MD="${BENCH_MD:-$ROOT/BENCHMARKS.md}"
mkdir -p "$BENCH_OUT"

bench_log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

REPORT_NAME=""
REPORT_FILE=""

# ratio VALUE BASELINE: VALUE / BASELINE as "1.23×" ("n/a" without a baseline).
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (b == "" || b + 0 == 0 || a == "") { print "n/a"; exit }
    printf "%.2f×\n", a / b }'
}

# thousands N: 1234567 -> 1,234,567 (integers; other text passes through).
thousands() {
  awk -v n="$1" 'BEGIN {
    if (n !~ /^-?[0-9]+$/) { print n; exit }
    s = ""; neg = (n < 0); if (neg) n = -n; n = n ""
    while (length(n) > 3) { s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) }
    print (neg ? "-" : "") n s }'
}

# The machine a figure was measured on: cores, CPU, toolchain, commit.
machine_line() {
  local cpu commit
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then commit="$commit+changes"; fi
  printf '%s cores (%s), %s, %s, commit %s, %s' "$(nproc)" "${cpu:-unknown CPU}" \
    "$(rustc --version | cut -d' ' -f1-2)" "$(uname -m)" "$commit" "$(date -u +%Y-%m-%d)"
}

report_begin() {
  REPORT_NAME="$1"
  REPORT_FILE="$BENCH_OUT/$1.md"
  {
    printf '<!-- bench:%s -->\n## %s\n\n' "$1" "$2"
    cat
    printf '\nMachine: %s.\n\n' "$(machine_line)"
    printf '| figure | value | baseline | ratio | command |\n'
    printf '|---|---:|---:|---:|---|\n'
  } >"$REPORT_FILE"
}

# report_row FIGURE VALUE BASELINE RATIO COMMAND (pipes are escaped).
report_row() {
  [ -n "$REPORT_FILE" ] || die "report_row before report_begin"
  local cells=() cell
  for cell in "$@"; do cells+=("${cell//|/\\|}"); done
  printf '| %s | %s | %s | %s | %s |\n' "${cells[0]}" "${cells[1]}" "${cells[2]:-}" \
    "${cells[3]:-}" "${cells[4]:+\`${cells[4]}\`}" >>"$REPORT_FILE"
  printf '  %s: %s (baseline %s, ratio %s)\n' "$1" "$2" "${3:-none}" "${4:-n/a}" >&2
}

report_text() {
  { printf '\n'; cat; } >>"$REPORT_FILE"
}

report_end() {
  printf '<!-- /bench:%s -->\n' "$REPORT_NAME" >>"$REPORT_FILE"
  report_splice "$REPORT_NAME" "$REPORT_FILE"
  bench_log "BENCHMARKS.md: section $REPORT_NAME rewritten ($REPORT_FILE)"
  REPORT_NAME=""
  REPORT_FILE=""
}

# report_splice NAME FILE: BENCHMARKS.md anew, the intro, then every section
# in SECTIONS order: NAME from FILE, the others as they were.
report_splice() {
  local name="$1" file="$2" next section block
  next="$(mktemp)"
  report_intro >"$next"
  for section in "${SECTIONS[@]}"; do
    if [ "$section" = "$name" ]; then
      block="$(cat "$file")"
    elif [ -f "$BENCH_MD" ]; then
      block="$(awk -v s="$section" '
        $0 == "<!-- bench:" s " -->" { on = 1 }
        on { print }
        $0 == "<!-- /bench:" s " -->" { on = 0 }' "$BENCH_MD")"
    else
      block=""
    fi
    if [ -n "$block" ]; then
      printf '\n%s\n' "$block" >>"$next"
    else
      printf '\n<!-- bench:%s -->\n## %s\n\nNot measured yet: run `scripts/bench %s`.\n<!-- /bench:%s -->\n' \
        "$section" "$section" "$section" "$section" >>"$next"
    fi
  done
  mv "$next" "$BENCH_MD"
}

report_intro() {
  cat <<'MD'
# Benchmarks

Written by `scripts/bench` (every section) or `scripts/bench <section>` (one
section's table; the others stay as they were). Each section says what it
measures and against which baseline; each row gives the figure, its value, the
baseline measured **in the same run**, the ratio value ÷ baseline and the
command that produced it. These are shared 2-core machines: absolute times
move from run to run, and the ratios against a baseline measured alongside,
with the variants alternated, are what carry over. Whether higher or lower is
better is said in each figure's name.
MD
}

# --- figures over repeated runs (used by the server and cluster sections) ---

# runs_median FIELD KEY FILES...: the median of a figure over the runs that
# did not fail (the lower middle of an even count). FIELD is the section's
# reader, called as `FIELD FILE KEY` (e.g. server_field).
runs_median() {
  local field="$1" key="$2" f v vals=()
  shift 2
  for f in "$@"; do
    [ "$("$field" "$f" failed)" = 0 ] || continue
    v="$("$field" "$f" "$key")"
    [ -n "$v" ] && vals+=("$v")
  done
  [ "${#vals[@]}" -gt 0 ] || return 0
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# runs_max FIELD KEY FILES...: the largest value of a figure over runs.
runs_max() {
  local field="$1" key="$2" f
  shift 2
  for f in "$@"; do "$field" "$f" "$key"; done | sort -g | tail -n 1
}
