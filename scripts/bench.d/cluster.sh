# shellcheck shell=bash
# ---- Section: the broadcast load on one process and on a cluster ----------
# The load generator (crates/heartline-server/examples/loadgen.rs) against
# three configurations of the release heartline-server at the same load:
#   sqlite   one process, SQLite file store (the embedded default, baseline);
#   pg       one process, PostgreSQL store, no bus (the store's cost alone);
#   cluster  two processes, PostgreSQL + Redis, the clients split over both
#            (client i on server i mod 2), so most receivers get most
#            messages through the bus.
# A private PostgreSQL (defaults, fsync on) and redis-server are started by
# the section (lib.sh) and always stopped; every PostgreSQL run gets a fresh
# database. Configurations alternated, BENCH_CLUSTER_ROUNDS rounds (2), at
# 1,000 clients × 0.1 msg/s; the lighter 500 × 0.1 follows only when the
# cluster does not deliver the heavy load in every round. Loopback only;
# every run bounded by `timeout`, every process stopped.

CLUSTER_BENCH_PIDS=()
CLUSTER_PG_DIR=""
CLUSTER_REDIS_DIR=""
CLUSTER_RUN_ID=0

cluster_cleanup() {
  local p
  for p in ${CLUSTER_BENCH_PIDS[@]+"${CLUSTER_BENCH_PIDS[@]}"}; do stop_pid "$p"; done
  CLUSTER_BENCH_PIDS=()
  stop_redis
  stop_postgres
  [ -z "$CLUSTER_PG_DIR" ] || rm -rf "$CLUSTER_PG_DIR"
  [ -z "$CLUSTER_REDIS_DIR" ] || rm -rf "$CLUSTER_REDIS_DIR"
  CLUSTER_PG_DIR=""
  CLUSTER_REDIS_DIR=""
}

# cluster_ticks PID...: CPU clock ticks (user + system, own and of reaped
# children) summed over the processes (gone ones count 0).
cluster_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    # Fields after the command name: state is $1, utime $12 … cstime $15.
    t="$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')" || t=0
    sum=$((sum + ${t:-0}))
  done
  printf '%s\n' "$sum"
}

# cluster_pg_ticks: the CPU ticks of the whole PostgreSQL instance: the
# postmaster (whose reaped children, the backends of closed connections,
# are in its cutime/cstime) and its live children (backends, checkpointer,
# WAL writer, autovacuum…).
cluster_pg_ticks() {
  # shellcheck disable=SC2046
  cluster_ticks "$PG_PID" $(pgrep -P "$PG_PID" || true)
}

# cluster_own_ticks PID: the CPU ticks (user + system) of the process itself.
cluster_own_ticks() {
  local t
  t="$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}')" || t=0
  printf '%s\n' "${t:-0}"
}

# cluster_busy: how many other heavy jobs run (cargo, rustc, Chromium by
# process name; scripts/test by command line).
cluster_busy() {
  local names scripts
  # shellcheck disable=SC2009 # pgrep -x refuses a pattern over 15 characters
  names="$(ps -eo comm= | grep -cxE 'cargo|rustc|chromium|chrome|chromedriver' || true)"
  scripts="$(pgrep -fc 'scripts/[t]est' || true)"
  printf '%s\n' $((names + scripts))
}

cluster_secs() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'; }

cluster_psql() { "$PG_BIN/psql" "$HEARTLINE_TEST_PG_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

# One run: cluster_run CONF CLIENTS RATE SECS OUT. CONF is sqlite, pg or
# cluster. Writes the loadgen's JSON line and key=value lines (CPU seconds
# of the servers, PostgreSQL, redis-server and the generator, the servers'
# peak RSS; "failed=1" when the
# generator timed out or failed) to OUT.
cluster_run() {
  local conf="$1" clients="$2" rate="$3" secs="$4" out="$5"
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/release" dir db="" status=0 n=1 i
  CLUSTER_RUN_ID=$((CLUSTER_RUN_ID + 1))
  dir="$(mktemp -d)"
  if [ "$conf" = sqlite ]; then
    db="$dir/bench.db"
  else
    cluster_psql "CREATE DATABASE bench_$CLUSTER_RUN_ID"
    db="${HEARTLINE_TEST_PG_URL%/*}/bench_$CLUSTER_RUN_ID"
  fi
  [ "$conf" = cluster ] && n=2
  local pids=() urls=() bus=()
  [ "$conf" = cluster ] && bus=(--bus "$HEARTLINE_TEST_REDIS_URL" --bus-prefix "bench$CLUSTER_RUN_ID")
  for ((i = 0; i < n; i++)); do
    "$target/heartline-server" --addr 127.0.0.1:0 --db "$db" "${bus[@]}" --dist "$dir" \
      --ready-file "$dir/ready$i" --max-connections-per-ip $((clients + 16)) \
      --max-pending-per-ip 128 --rate 1000 --burst 1000 --send-queue 4096 2>"$dir/server$i.log" &
    pids+=("$!")
    CLUSTER_BENCH_PIDS+=("$!")
  done
  for ((i = 0; i < n; i++)); do
    wait_for_file "$dir/ready$i" 30 "server $i ($conf)" "${pids[$i]}"
    urls+=("ws://$(cat "$dir/ready$i")/ws")
  done
  local url_list
  url_list="$(IFS=,; echo "${urls[*]}")"
  # Two readings: when the generator starts (whole run, connecting
  # included) and when every client has joined (the sending phase: sends,
  # fan-out, drain).
  local pg0 redis0 pg1 redis1 srv1=() lg1=0 lg_job lg_pid i
  pg0="$(cluster_pg_ticks)"
  redis0="$(cluster_ticks "$REDIS_PID")"
  local TIMEFORMAT='%U %S'
  { time timeout $((secs + 90)) "$target/examples/loadgen" --url "$url_list" --ack-latency \
    --clients "$clients" --rate "$rate" --duration "$secs" >"$dir/loadgen.out" 2>"$dir/loadgen.err"; } \
    2>"$dir/loadgen.time" &
  lg_job=$!
  local deadline=$((SECONDS + 90))
  until grep -q 'clients joined' "$dir/loadgen.err" 2>/dev/null; do
    kill -0 "$lg_job" 2>/dev/null || break
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.05
  done
  # The generator: the child of `timeout`, the child of the job's subshell.
  lg_pid="$(pgrep -P "$(pgrep -P "$lg_job" | head -n 1)" | head -n 1 || true)"
  pg1="$(cluster_pg_ticks)"
  redis1="$(cluster_ticks "$REDIS_PID")"
  for ((i = 0; i < n; i++)); do srv1+=("$(cluster_own_ticks "${pids[$i]}")"); done
  [ -z "$lg_pid" ] || lg1="$(cluster_own_ticks "$lg_pid")"
  wait "$lg_job" || status=$?
  local srv2=() rss rsss=()
  for ((i = 0; i < n; i++)); do
    srv2+=("$(cluster_own_ticks "${pids[$i]}")")
    rss="$(awk '/^VmHWM:/ {print $2}' "/proc/${pids[$i]}/status" 2>/dev/null)"
    rsss+=("${rss:-0}")
  done
  for ((i = 0; i < n; i++)); do stop_pid "${pids[$i]}"; done
  # The servers' backends exit with their pools; let the postmaster reap them.
  sleep 1
  local pg2 redis2 lg_total
  pg2="$(cluster_pg_ticks)"
  redis2="$(cluster_ticks "$REDIS_PID")"
  lg_total="$(awk 'NF == 2 {printf "%.2f", $1 + $2}' "$dir/loadgen.time")"
  local srv_all=0 srv_send=0 each=()
  for ((i = 0; i < n; i++)); do
    srv_all=$((srv_all + srv2[i]))
    srv_send=$((srv_send + srv2[i] - srv1[i]))
    each+=("$(cluster_secs $((srv2[i] - srv1[i])))")
  done
  {
    grep '^{' "$dir/loadgen.out" || true
    printf 'failed=%s\n' "$([ "$status" -eq 0 ] && [ -n "$lg_pid" ] && echo 0 || echo 1)"
    printf 'servers=%s\n' "$n"
    printf 'server_cpu_s=%s\n' "$(cluster_secs "$srv_all")"
    printf 'postgres_cpu_s=%s\n' "$(cluster_secs $((pg2 - pg0)))"
    printf 'redis_cpu_s=%s\n' "$(cluster_secs $((redis2 - redis0)))"
    printf 'loadgen_cpu_s=%s\n' "$lg_total"
    printf 'server_send_cpu_s=%s\n' "$(cluster_secs "$srv_send")"
    printf 'server_send_cpu_each_s=%s\n' "$(IFS=/; echo "${each[*]}")"
    printf 'postgres_send_cpu_s=%s\n' "$(cluster_secs $((pg2 - pg1)))"
    printf 'redis_send_cpu_s=%s\n' "$(cluster_secs $((redis2 - redis1)))"
    # The generator's CPU is read from `time` at its end.
    printf 'loadgen_send_cpu_s=%s\n' "$(awk -v t="$lg_total" -v a="$(cluster_secs "$lg1")" 'BEGIN {printf "%.2f", t - a}')"
    printf 'server_rss_kb=%s\n' "$(printf '%s\n' "${rsss[@]}" | sort -g | tail -n 1)"
  } >"$out"
  local total
  total="$(awk -F= '/^(server|postgres|redis|loadgen)_send_cpu_s=/ {s += $2} END {printf "%.2f", s}' "$out")"
  printf 'total_send_cpu_s=%s\n' "$total" >>"$out"
  cat "$dir/loadgen.out" "$out" >&2
  rm -rf "$dir"
}

# cluster_field FILE KEY: a figure of one run: a key=value line, or a key
# of the loadgen's JSON line (a dotted path: latency_ms.p50, ack_ms.p99).
cluster_field() {
  node -e '
    const fs = require("fs");
    const [file, key] = process.argv.slice(1);
    const lines = fs.readFileSync(file, "utf8").split("\n");
    const json = lines.find((l) => l.startsWith("{"));
    const kv = Object.fromEntries(lines.filter((l) => !l.startsWith("{") && l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    let v = key in kv ? kv[key] : key.split(".").reduce((o, k) => (o == null ? o : o[k]), json ? JSON.parse(json) : {});
    // A derived figure: the share of the offered deliveries that arrived.
    if (key === "delivered_pct" && json) {
      const j = JSON.parse(json);
      v = j.expected > 0 ? (100 * j.delivered / j.expected).toFixed(2) : "";
    }
    console.log(v === undefined || v === null ? "" : v);' "$1" "$2"
}

# cluster_median KEY FILES...: the median over the runs that did not fail
# (the lower middle of an even count).
cluster_median() { runs_median cluster_field "$@"; }

# cluster_max KEY FILES...: the largest value over runs.
cluster_max() { runs_max cluster_field "$@"; }

# cluster_all_delivered FILES...: "yes" when every run delivered everything
# and dropped no client.
cluster_all_delivered() {
  local f
  for f in "$@"; do
    if [ "$(cluster_field "$f" failed)" != 0 ] ||
      [ "$(cluster_field "$f" delivered)" != "$(cluster_field "$f" expected)" ] ||
      [ "$(cluster_field "$f" dropped_clients)" != 0 ]; then
      echo no
      return
    fi
  done
  echo yes
}

# cluster_per FILES... : median over runs of A / B per run (KEY_A KEY_B SCALE
# in CLUSTER_PER, "" when B is 0).
cluster_per() {
  local a="$1" b="$2" scale="$3" f va vb vals=()
  shift 3
  for f in "$@"; do
    [ "$(cluster_field "$f" failed)" = 0 ] || continue
    va="$(cluster_field "$f" "$a")"
    vb="$(cluster_field "$f" "$b")"
    vals+=("$(awk -v a="$va" -v b="$vb" -v s="$scale" 'BEGIN { if (a != "" && b + 0 > 0) printf "%.2f\n", s * a / b }')")
  done
  printf '%s\n' "${vals[@]}" | awk 'NF' | sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'
}

cluster_mib() { [ -n "$1" ] && awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
cluster_round() { [ -n "$1" ] && awk -v v="$1" -v d="${2:-1}" 'BEGIN {printf "%.*f", d, v}'; }

# cluster_rows LOAD CONF: the table's rows of configuration CONF at load
# LOAD (clients), against the SQLite process at the same load.
cluster_rows() {
  local load="$1" conf="$2" cmd="scripts/bench cluster" v b label base="1 process, SQLite"
  local runs=("$BENCH_OUT"/cluster-"$conf"-"$load"-*.run) sq=("$BENCH_OUT"/cluster-sqlite-"$load"-*.run)
  case "$conf" in
    pg) label="$load clients, 1 process, PostgreSQL" ;;
    cluster) label="$load clients, 2 processes, PostgreSQL + Redis" ;;
  esac
  report_row "$label: every offered delivery arrived, no client dropped, every run" \
    "$(cluster_all_delivered "${runs[@]}")" "$(cluster_all_delivered "${sq[@]}") ($base)" "" "$cmd"
  v="$(cluster_median delivered_pct "${runs[@]}")"
  b="$(cluster_median delivered_pct "${sq[@]}")"
  report_row "$label: delivered / offered, % (higher is better)" "${v:-failed}" "${b:-failed} ($base)" "$(ratio "$v" "$b")" "$cmd"
  v="$(cluster_median delivered_per_sec "${runs[@]}")"
  b="$(cluster_median delivered_per_sec "${sq[@]}")"
  report_row "$label: delivered messages/s, first send to last delivery (higher is better)" \
    "$(thousands "${v:-failed}")" "$(thousands "${b:-failed}") ($base)" "$(ratio "$v" "$b")" "$cmd"
  local f
  for f in p50 p99; do
    v="$(cluster_median "latency_ms.$f" "${runs[@]}")"
    b="$(cluster_median "latency_ms.$f" "${sq[@]}")"
    report_row "$label: broadcast latency $f, ms (lower is better)" \
      "$(cluster_round "$v" 1)" "$(cluster_round "$b" 1) ($base)" "$(ratio "$v" "$b")" "$cmd"
  done
  if [ "$conf" = cluster ]; then
    for f in p50 p99; do
      v="$(cluster_median "latency_cross_ms.$f" "${runs[@]}")"
      b="$(cluster_median "latency_same_ms.$f" "${runs[@]}")"
      report_row "$label: broadcast latency $f to receivers on the other process (through Redis), ms (lower is better)" \
        "$(cluster_round "$v" 1)" "$(cluster_round "$b" 1) (receivers on the sender's process)" "$(ratio "$v" "$b")" "$cmd"
    done
  fi
  for f in p50 p99; do
    v="$(cluster_median "ack_ms.$f" "${runs[@]}")"
    b="$(cluster_median "ack_ms.$f" "${sq[@]}")"
    report_row "$label: send → ack (after the commit) $f, ms (lower is better)" \
      "$(cluster_round "$v" 1)" "$(cluster_round "$b" 1) ($base)" "$(ratio "$v" "$b")" "$cmd"
  done
  v="$(cluster_median server_cpu_s "${runs[@]}")"
  b="$(cluster_median server_cpu_s "${sq[@]}")"
  report_row "$label: server CPU s per whole run, connecting included, sum over its processes (lower is better)" \
    "$(cluster_round "$v" 1)" "$(cluster_round "$b" 1) ($base)" "$(ratio "$v" "$b")" "$cmd"
  local key what
  for key in server postgres redis loadgen total; do
    case "$key" in
      server) what="server CPU s while sending, sum over its processes" ;;
      postgres) what="PostgreSQL CPU s while sending, all its processes" ;;
      redis) what="redis-server CPU s while sending" ;;
      loadgen) what="load generator CPU s while sending" ;;
      total) what="CPU s while sending, every process above" ;;
    esac
    v="$(cluster_median "${key}_send_cpu_s" "${runs[@]}")"
    b="$(cluster_median "${key}_send_cpu_s" "${sq[@]}")"
    report_row "$label: $what (lower is better)" "$(cluster_round "$v" 1)" "$(cluster_round "$b" 1) ($base)" \
      "$(ratio "$v" "$b")" "$cmd"
  done
  v="$(cluster_per delivered server_send_cpu_s 1 "${runs[@]}")"
  b="$(cluster_per delivered server_send_cpu_s 1 "${sq[@]}")"
  report_row "$label: deliveries per server CPU-second while sending (higher is better)" \
    "$(thousands "$(cluster_round "$v" 0)")" "$(thousands "$(cluster_round "$b" 0)") ($base)" "$(ratio "$v" "$b")" "$cmd"
  v="$(cluster_max server_rss_kb "${runs[@]}")"
  b="$(cluster_max server_rss_kb "${sq[@]}")"
  report_row "$label: peak RSS of the largest server process, MiB (lower is better)" \
    "$(cluster_mib "$v")" "$(cluster_mib "$b") ($base)" "$(ratio "$v" "$b")" "$cmd"
}

bench_cluster() {
  local rounds="${BENCH_CLUSTER_ROUNDS:-2}" secs="${BENCH_SECONDS:-8}"
  local heavy="${BENCH_CLUSTER_HEAVY:-1000}" light="${BENCH_CLUSTER_LIGHT:-500}" rate="${BENCH_CLUSTER_RATE:-0.1}"
  bench_log "cargo build --release -p heartline-server --bin heartline-server --example loadgen"
  cargo build --release -p heartline-server --bin heartline-server --example loadgen
  ensure_node
  # Each client is a socket in the generator and one in a server.
  local need=$((heavy * 2 + 256)) soft
  soft="$(ulimit -n)"
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  fi
  CLUSTER_BENCH_PIDS=()
  trap cluster_cleanup EXIT
  # PostgreSQL's user (postgres, when we are root) must reach its directory.
  CLUSTER_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/heartline-bench-pg.XXXXXX")"
  CLUSTER_REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/heartline-bench-redis.XXXXXX")"
  start_postgres "$CLUSTER_PG_DIR"
  start_redis "$CLUSTER_REDIS_DIR"
  local pg_version redis_version fsync sync_commit
  pg_version="$("$PG_BIN/postgres" --version | awk '{print $3}')"
  redis_version="$(redis-server --version | sed -E 's/.* v=([^ ]+).*/\1/')"
  fsync="$(cluster_psql "SHOW fsync")"
  sync_commit="$(cluster_psql "SHOW synchronous_commit")"
  rm -f "$BENCH_OUT"/cluster-*.run
  local loads=("$heavy") load round conf order started=$SECONDS
  cluster_rounds() {
    for round in $(seq 1 "$rounds"); do
      # Alternate the order, round by round.
      if [ $((round % 2)) -eq 1 ]; then order="sqlite pg cluster"; else order="cluster pg sqlite"; fi
      for conf in $order; do
        bench_log "round $round: $conf, $1 clients × $rate msg/s for $secs s"
        cluster_run "$conf" "$1" "$rate" "$secs" "$BENCH_OUT/cluster-$conf-$1-$round.run"
      done
    done
  }
  cluster_rounds "$heavy"
  local heavy_held
  heavy_held="$(cluster_all_delivered "$BENCH_OUT"/cluster-cluster-"$heavy"-*.run)"
  if [ "$heavy_held" != yes ]; then
    bench_log "the cluster did not deliver $heavy clients × $rate in every round: the lighter load too"
    loads+=("$light")
    cluster_rounds "$light"
  fi
  local took=$((SECONDS - started))
  cluster_cleanup
  trap - EXIT

  local runs_of=$((rounds * 3 * ${#loads[@]}))
  report_begin cluster "The broadcast load on one process and on two (PostgreSQL + Redis)" <<MD
The load generator of the server section (\`loadgen\`, clients of the
socket layer's native driver on one thread, every client in one room,
each sending \`chat.send\` for $secs s, every receiver measuring the
broadcast latency) against three configurations of the release
\`heartline-server\` at the same load, $heavy clients × $rate msg/s
($(awk -v c="$heavy" -v r="$rate" 'BEGIN {printf "%g", c * r}') messages/s,
$(thousands "$(awk -v c="$heavy" -v r="$rate" 'BEGIN {printf "%d", c * c * r}')") deliveries/s offered):

- **1 process, SQLite** (the baseline): the embedded default, a SQLite file;
- **1 process, PostgreSQL**: \`--db postgres://…\`, no bus: what the store
  alone costs;
- **2 processes, PostgreSQL + Redis**: \`--db postgres://… --bus redis://…\`,
  the clients split over both (\`loadgen --url A,B\`: client i starts on
  server i mod 2, with the other as its failover), so half of every
  message's receivers get it through the bus: committed by one process,
  published to Redis, delivered by the other in \`seq\` order.

Same server flags as the server section (\`--rate 1000 --burst 1000
--send-queue 4096\`, connections per IP raised). PostgreSQL $pg_version and
redis-server $redis_version are private instances the section starts on
loopback and always stops; PostgreSQL keeps its defaults (fsync
$fsync, synchronous_commit $sync_commit: every commit waits for its WAL
flush) and every run gets a fresh database; Redis runs without persistence.
All processes share this machine's $(nproc) cores. Configurations
alternated, $rounds rounds; medians over rounds (peak RSS: the largest).
CPU seconds are user + system while sending (from every client joined to
the end of the drain; the servers' also over the whole run, connecting
included, as in the server section): each server's own, PostgreSQL's summed over the postmaster and all its
processes (backends reaped during the run included), redis-server's and
the generator's (for the SQLite and one-process runs, PostgreSQL and Redis
are idle). The ack latency is the generator's send → \`ack\` time: the
server acks after the commit, so it is the store's commit plus a loopback
round trip. $runs_of runs took $took s.
MD
  for load in "${loads[@]}"; do
    cluster_rows "$load" pg
    cluster_rows "$load" cluster
  done
  cluster_text "$heavy" "$heavy_held" "$light"
  report_end
}

# cluster_reading SQLITE-RUNS -- PG-RUNS -- CLUSTER-RUNS: the figures in
# plain words: how busy the cores were while sending, and what PostgreSQL
# and the bus added in CPU.
cluster_reading() {
  local sq=() pg=() cl=() part=0 f
  for f in "$@"; do
    if [ "$f" = -- ]; then part=$((part + 1)); continue; fi
    case "$part" in 0) sq+=("$f") ;; 1) pg+=("$f") ;; *) cl+=("$f") ;; esac
  done
  local secs="${BENCH_SECONDS:-8}" tsq tpg tcl ssq spg scl ppg pcl
  tsq="$(cluster_median total_send_cpu_s "${sq[@]}")"
  tpg="$(cluster_median total_send_cpu_s "${pg[@]}")"
  tcl="$(cluster_median total_send_cpu_s "${cl[@]}")"
  ssq="$(cluster_median server_send_cpu_s "${sq[@]}")"
  spg="$(cluster_median server_send_cpu_s "${pg[@]}")"
  scl="$(cluster_median server_send_cpu_s "${cl[@]}")"
  ppg="$(cluster_median postgres_send_cpu_s "${pg[@]}")"
  pcl="$(cluster_median postgres_send_cpu_s "${cl[@]}")"
  awk -v secs="$secs" -v tsq="$tsq" -v tpg="$tpg" -v tcl="$tcl" -v ssq="$ssq" -v spg="$spg" \
    -v scl="$scl" -v ppg="$ppg" -v pcl="$pcl" -v cores="$(nproc)" 'BEGIN {
    # Sending lasts secs; the 3 s drain and the 0.5 s lead-in are nearly idle.
    printf "In plain words: while sending, the processes used %.1f, %.1f and %.1f CPU s (SQLite, PostgreSQL, two processes), most of it in the %g s of sending, ", tsq, tpg, tcl, secs
    printf "so %.1f to %.1f of this machine'"'"'s %d cores were busy then: the machine is saturated, and the latencies are mostly waiting for a core (the generator alone needs about one). ", tsq / (secs + 0.5), tcl / (secs + 0.5), cores
    printf "That is also why the ack latency is above the broadcast latency: the generator records an ack after it has read the fan-out queued in front of it. "
    printf "What PostgreSQL costs is CPU: against SQLite, the server spends %+.1f s more (the driver, the pool, the network round trips to the database) and PostgreSQL itself %.1f s, per run of %d messages; ", spg - ssq, ppg, secs * 100
    printf "two processes with the bus add %+.1f s of server CPU and %+.1f s of PostgreSQL over one process on PostgreSQL (each process subscribes, checks seq, and fills gaps from the database when it must), Redis next to nothing. ", scl - spg, pcl - ppg
    printf "On a saturated machine that extra CPU is what the latency grows by. The bus hop itself does not show: the receivers on the other process get a message within a millisecond of those on the sender'"'"'s, because both wait for the same busy cores; it is under a millisecond at light load (measured at 100 and 200 clients while writing this section: p50 4.9 against 5.3 ms and 6.1 against 6.7 ms).\n"
  }'
}

# cluster_text HEAVY HELD LIGHT: the paragraph after the table: where the
# time goes, from the figures of the heavy load.
cluster_text() {
  local heavy="$1" held="$2" light="$3" c s p
  local sq=("$BENCH_OUT"/cluster-sqlite-"$heavy"-*.run) pg=("$BENCH_OUT"/cluster-pg-"$heavy"-*.run)
  local cl=("$BENCH_OUT"/cluster-cluster-"$heavy"-*.run)
  # share CONF-FILES KEY: KEY's CPU as a % of the run's total (median).
  share() {
    local key="$1"
    shift
    cluster_per "${key}_send_cpu_s" total_send_cpu_s 100 "$@" | awk '{printf "%.0f", $1}'
  }
  local busy
  busy="$(cluster_busy)"
  report_text <<MD
**Where the time goes** ($heavy clients; shares of all the CPU the
processes used while sending, from every client joined to the end of the
drain). One process with SQLite: the server $(share server "${sq[@]}") %,
the generator $(share loadgen "${sq[@]}") %. One process with PostgreSQL:
server $(share server "${pg[@]}") %, PostgreSQL $(share postgres "${pg[@]}") %,
generator $(share loadgen "${pg[@]}") %. Two processes: the servers
$(share server "${cl[@]}") % (each: $(for f in "${cl[@]}"; do cluster_field "$f" server_send_cpu_each_s; done | paste -sd ' ' | sed 's/ /, /g') s per run),
PostgreSQL $(share postgres "${cl[@]}") %, Redis $(share redis "${cl[@]}") %,
generator $(share loadgen "${cl[@]}") %. The generator reads every delivery
(it is the same for every configuration: $(cluster_median loadgen_send_cpu_s "${sq[@]}"),
$(cluster_median loadgen_send_cpu_s "${pg[@]}") and $(cluster_median loadgen_send_cpu_s "${cl[@]}") s), so the
difference between the rows is the servers' and the services' own.
A chat message is acked after its commit in $(cluster_round "$(cluster_median ack_ms.p50 "${pg[@]}")" 1) ms at the median on
PostgreSQL against $(cluster_round "$(cluster_median ack_ms.p50 "${sq[@]}")" 1) ms on SQLite
(p99 $(cluster_round "$(cluster_median ack_ms.p99 "${pg[@]}")" 1) against
$(cluster_round "$(cluster_median ack_ms.p99 "${sq[@]}")" 1)); on two processes the
receivers on the other process get a message
$(c="$(cluster_median latency_cross_ms.p50 "${cl[@]}")"; s="$(cluster_median latency_same_ms.p50 "${cl[@]}")"; awk -v c="$c" -v s="$s" 'BEGIN { if (c == "" || s == "") print "(not measured)"; else printf "%.1f ms %s", (c > s ? c - s : s - c), (c > s ? "later" : "earlier") }')
at the median than those on the sender's (the bus hop: publish, Redis,
the other process's subscriber, its \`seq\` check).
$(p="$(cluster_median latency_ms.p50 "${cl[@]}")"; s="$(cluster_median latency_ms.p50 "${sq[@]}")"; [ -n "$p" ] && [ -n "$s" ] && printf 'The cluster'"'"'s broadcast latency p50 is %s× the single SQLite process'"'"'s.' "$(ratio "$p" "$s" | tr -d '×')")
$(cluster_reading "${sq[@]}" -- "${pg[@]}" -- "${cl[@]}")
The heavy load on two processes: every delivery arrived in every round:
**$held**$([ "$held" = yes ] && printf '; the lighter load (%s clients) was not needed' "$light" || printf '; the lighter load (%s clients) is in the table too' "$light").
$([ "$busy" -gt 0 ] && printf 'Other heavy jobs (cargo, rustc, tests, Chromium: %s processes) were still running on this machine when the section ended.' "$busy" || printf 'No other heavy job (cargo, rustc, tests, Chromium) ran on this machine when the section ended.')
Raw runs: \`$BENCH_OUT/cluster-*.run\`.
MD
}
