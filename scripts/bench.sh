#!/usr/bin/env bash
# Server-level DNS benchmark: lexa's real UDP server beside the two servers a user would pick instead (Knot DNS and
# dnsmasq), all serving the same N A records, measured in one run on this machine. Each server in turn is pinned
# to one CPU and driven by dnsperf pinned to another; for each we report dnsperf's QPS and loss, and the server's
# own CPU time per completed query (utime + stime of every thread, from /proc/<pid>/stat). The QPS ceiling depends
# on the machine (and often on the single dnsperf thread); CPU per query, and lexa's ratios to knot and dnsmasq
# measured in the same run, are the numbers to compare across machines.
#
# lexa serves a SYNTHETIC snapshot (src/bench/server.ts): a real LXD cannot hold 1000 containers here. The DNS path
# it measures (startPlainDns: UDP socket, handler, resolver, wire codec) is the daemon's own.
#
#   npm run bench                      (= bash scripts/bench.sh; needs root for apt-get, and two CPUs)
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]     dnsperf -l for each measurement
#   BENCH_WARMUP [2]       seconds of unmeasured load first (JIT, caches), the same for every server
#   BENCH_INSTANCES [1000] names served
#   BENCH_CLIENTS [10]     dnsperf -c;  BENCH_OUTSTANDING [100] dnsperf -q
#   BENCH_SERVERS ["knot dnsmasq lexa lexadgram lexabare"]  which servers, in this order. `lexa` is the daemon's
#                          UDP path (batched recvmmsg/sendmmsg, metrics counted); `lexadgram` the same on Node's
#                          dgram (the fallback: what batching buys); `lexabare` batched without the metrics
#                          counters on its query path (what counting costs): the before/after
#   BENCH_ROUNDS [1]       measure every server this many times, interleaved (knot, dnsmasq, lexa, knot, ...)
#   BENCH_MICRO [1]        0 skips the in-process micro-benchmark (node dist/bench/dns.js) at the end
#   BENCH_ENCRYPTED [1]    0 skips DoT/DoH/DoQ: lexa's against dnsdist fronting knot, each over UDP on the same server
#   BENCH_LXD [1]          0 skips the two figures that need the real LXD of scripts/testbed.sh: propagation (lxc launch
#                          → name answers, lexa vs LXD's dnsmasq; lxc stop → gone) and start-up with 50 containers
#   BENCH_PMAP [1]         0 skips the persistent-map comparison (node dist/bench/pmap.js: lexa's pmap vs immutable's
#                          Map on the snapshot's operations, the figures behind keeping pmap.ts)
#   BENCH_GROWTH [1]       0 skips the growth benchmark (node dist/bench/growth.js: the daemon against a simulated
#                          LXD of 10 … 10,000 instances)
#   BENCH_CHECKS [1]       0 skips the server-side checks benchmark (node dist/bench/checks.js: 1,000 checked
#                          services against SIMULATED targets, loopback HTTP listeners in a child process)
#   BENCH_WAKEUP [1]       0 skips the wake-up benchmark (node dist/bench/wakeup.js: one change with 10,000 blocking
#                          queries and 10,000 SSE streams waiting, in process against a SIMULATED snapshot)
#   BENCH_SITES [1]        0 skips three sites against SIMULATED LXDs (node dist/bench/sites.js: start → ready,
#                          RSS and CPU per query, against one site measured the same way)
#   BENCH_BUILD [1]        0 uses dist/ as it is instead of rebuilding when src/ is newer
#
# The run ends with one table (issue 19): each figure for lexa, its peer and their ratio, all from this run; every
# section records its rows in $BENCH_ROWS (`id|figure|lexa|peer|ratio`, src/bench/rows.ts), a skipped one says so.
#   BENCH_SERVER_CPU, BENCH_CLIENT_CPU  [the first two CPUs this process may use]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
instances=${BENCH_INSTANCES:-1000}
clients=${BENCH_CLIENTS:-10}
outstanding=${BENCH_OUTSTANDING:-100}
servers=${BENCH_SERVERS:-knot dnsmasq lexa lexadgram lexabare}
rounds=${BENCH_ROUNDS:-1}
micro=${BENCH_MICRO:-1}
pmap=${BENCH_PMAP:-1}
growth=${BENCH_GROWTH:-1}
checks=${BENCH_CHECKS:-1}
encrypted=${BENCH_ENCRYPTED:-1}
real_lxd=${BENCH_LXD:-1}
wakeup=${BENCH_WAKEUP:-1}
sites=${BENCH_SITES:-1}
build=${BENCH_BUILD:-1}

# How long a server may take to answer its first query after start.
START_TIMEOUT_S=20
# How long h2load may run past its duration (connecting, draining the last streams) before it is killed.
H2LOAD_GRACE_S=30
# How long a server may take to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT_S=5

die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# Child processes: every one we start is recorded here and ended by pid on exit, whatever the exit.
children=()
tmp=$(mktemp -d /tmp/lexa-bench.XXXXXX)
# The table's rows, appended by every section (row below; the node benchmarks through src/bench/rows.ts).
export BENCH_ROWS=$tmp/rows
: >"$BENCH_ROWS"
# row ID FIGURE LEXA PEER RATIO: one row of the final table.
row() { local IFS='|'; echo "$*" >>"$BENCH_ROWS"; }
# ratio A B: A / B to two decimals with "×", or nothing when either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f×", a / b }'; }
stop_pid() {
  local pid=$1 waited=0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && (( waited < STOP_TIMEOUT_S * 10 )); do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${children[@]}"; do stop_pid "$pid"; done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------------------
# Tools: installed from Debian when missing (idempotent). Installing knot may try to start its service; any knotd
# that appears during our install is ours to stop (no systemd here, but an init script may still start one).
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v dnsdist >/dev/null || need+=(dnsdist)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v taskset >/dev/null || need+=(util-linux)
command -v shuf >/dev/null || need+=(coreutils)
if (( ${#need[@]} > 0 )); then
  [[ $(id -u) -eq 0 ]] || die "missing ${need[*]}; run as root so this script can apt-get install them"
  echo "bench: installing ${need[*]}"
  knotd_before=" $(pgrep -x knotd | tr '\n' ' ') "
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq || die "apt-get update failed (is another apt running?)"
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    die "apt-get install ${need[*]} failed"
  for pid in $(pgrep -x knotd || true); do
    [[ $knotd_before == *" $pid "* ]] || { echo "bench: stopping knotd $pid started by the package install"; stop_pid "$pid"; }
  done
fi

# npm packages when there are none (a clean clone) or they predate immutable (a dev dependency only the pmap
# comparison uses); an existing complete node_modules is left as it is.
if [[ ! -d node_modules/immutable ]]; then npm ci --no-audit --no-fund; fi
# Rebuild when dist/ is missing or any source is newer than the bench server it holds.
if [[ $build != 0 ]] && { [[ ! -f dist/bench/server.js || ! -f dist/bench/dns.js || ! -f dist/bench/pmap.js ]] ||
    [[ -n $(find src -name '*.ts' -newer dist/bench/server.js -print -quit) ]]; }; then
  npm run build --silent || die "npm run build failed (BENCH_BUILD=0 benchmarks the dist/ that is there)"
fi
[[ -f dist/bench/server.js ]] || die "dist/bench/server.js missing: run npm run build"

# Two CPUs: the server's and dnsperf's.
allowed=$(taskset -pc $$ | sed 's/.*: //')
cpus=()
IFS=',' read -ra parts <<<"$allowed"
for part in "${parts[@]}"; do
  if [[ $part == *-* ]]; then for ((c = ${part%-*}; c <= ${part#*-}; c++)); do cpus+=("$c"); done; else cpus+=("$part"); fi
done
(( ${#cpus[@]} >= 2 )) || die "needs two CPUs (one for the server, one for dnsperf); this process may use: $allowed"
server_cpu=${BENCH_SERVER_CPU:-${cpus[0]}}
client_cpu=${BENCH_CLIENT_CPU:-${cpus[1]}}
[[ $server_cpu != "$client_cpu" ]] || die "BENCH_SERVER_CPU and BENCH_CLIENT_CPU must differ"
clk_tck=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------------------------
# The names: one list from lexa's bench server (src/bench/server.ts --zone: host A and AAAA, the `eth0.if.` SRV
# targets, an SRV per endpoint of svc-1 … svc-100), written out as a Knot zone, a dnsmasq hosts file and SRV
# lines, and two dnsperf query files in random order, so all three serve and are asked exactly the same:
#   a:   the N host names, A;
#   mix: per instance, its name A twice, AAAA once, its service's SRV once, and a name that does not exist once
#        (40% A, 20% AAAA, 20% SRV, 20% NXDOMAIN).
node dist/bench/server.js --records --instances "$instances" >"$tmp/records"
[[ $(wc -l <"$tmp/records") -eq $instances ]] || die "bench server listed $(wc -l <"$tmp/records") records, not $instances"
node dist/bench/server.js --zone --instances "$instances" >"$tmp/zone"
# The zone: lexa's default suffix, which the bench server uses (the records are `bench-<i>.<suffix> <address>`).
suffix=$(awk 'NR == 1 { sub(/^[^.]*\./, "", $1); print $1 }' "$tmp/records")
awk '{ print $1 " A" }' "$tmp/records" | shuf >"$tmp/queries-a"
awk -v s="$suffix" '
  $2 == "A" && $1 !~ /^eth0\.if\./ { n = $1; sub(/\.$/, "", n); print n " A"; print n " A"; print n " AAAA"
                                      h = n; sub(/\..*/, "", h); print "nope-" h "." s " A" }
  $2 == "SRV" { o = $1; sub(/\.$/, "", o); print o " SRV" }' "$tmp/zone" | shuf >"$tmp/queries-mix"
# A few names to check every server's answers with: the first, the middle and the last.
check_names=$(sed -n "1p;$(( (instances + 1) / 2 ))p;${instances}p" "$tmp/records" | awk '{ print $1 }' | sort -u)

# TTL 0 everywhere: lexa's default (answers are never cached), so no server gets to answer something different.
mkdir -p "$tmp/knot/zones" "$tmp/knot/db" "$tmp/knot/run"
{
  echo "\$ORIGIN $suffix."
  echo "\$TTL 0"
  echo "@ SOA ns.$suffix. hostmaster.$suffix. 1 3600 600 86400 0"
  echo "@ NS ns.$suffix."
  echo "ns A 127.0.0.1"   # glue for the NS, else knot warns "missing glue record"; no query asks for it
  cat "$tmp/zone"
} >"$tmp/knot/zones/$suffix.zone"
# dnsmasq: addresses from a hosts file (every owner of an A or AAAA), SRV records from srv-host lines.
awk '$2 == "A" || $2 == "AAAA" { o = $1; sub(/\.$/, "", o); print $3 " " o }' "$tmp/zone" >"$tmp/dnsmasq.hosts"
awk '$2 == "SRV" { o = $1; t = $6; sub(/\.$/, "", o); sub(/\.$/, "", t); print "srv-host=" o "," t "," $5 "," $3 "," $4 }' \
  "$tmp/zone" >"$tmp/dnsmasq.conf"

# A port free for both UDP and TCP on 127.0.0.1 (lexa picks its own: it binds port 0).
free_port() {
  node -e '
    const dgram = require("node:dgram"), net = require("node:net");
    const u = dgram.createSocket("udp4");
    u.bind(0, "127.0.0.1", () => {
      const port = u.address().port;
      const t = net.createServer().once("error", () => process.exit(1));
      t.listen(port, "127.0.0.1", () => { console.log(port); t.close(); u.close(); });
    });'
}

# ---------------------------------------------------------------------------------------------------------------
# Servers. Each start_* sets pid_<name> and port_<name>; the server runs on $server_cpu with all its threads.
start_knot() {
  local port; port=$(free_port)
  # One UDP and one TCP worker: the server has one CPU. Knot's default (one per CPU, so two here) pinned to one CPU
  # cost about the same CPU per query but ran at ~80k QPS instead of ~140k: workers contend for the one CPU.
  # No zone file write-back, no journal, control socket and storage in our own directory.
  cat >"$tmp/knot/knot.conf" <<EOF
server:
    rundir: "$tmp/knot/run"
    pidfile: "$tmp/knot/run/knot.pid"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "$tmp/knot/run/knot.sock"
database:
    storage: "$tmp/knot/db"
log:
  - target: stderr
    any: warning
zone:
  - domain: $suffix.
    storage: "$tmp/knot/zones"
    file: "$suffix.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
EOF
  knotc -c "$tmp/knot/knot.conf" conf-check >/dev/null || die "knot.conf rejected: $(knotc -c "$tmp/knot/knot.conf" conf-check 2>&1)"
  taskset -c "$server_cpu" knotd -c "$tmp/knot/knot.conf" >"$tmp/knot.log" 2>&1 &
  pid_knot=$!; children+=("$pid_knot"); port_knot=$port
}

start_dnsmasq() {
  local port; port=$(free_port)
  # Answers from the hosts file only: no upstreams (--no-resolv), no /etc/hosts, `lexa` local (never forwarded).
  # Hosts-file entries live outside the cache, so --cache-size does not limit them; 10000 as a user might set.
  taskset -c "$server_cpu" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$tmp/dnsmasq.hosts" \
    --conf-file="$tmp/dnsmasq.conf" --local="/$suffix/" --port="$port" --listen-address=127.0.0.1 --bind-interfaces --cache-size=10000 \
    --pid-file= -u root >"$tmp/dnsmasq.log" 2>&1 &
  pid_dnsmasq=$!; children+=("$pid_dnsmasq"); port_dnsmasq=$port
}

# lexa: UDP with batched recvmmsg/sendmmsg (native/udp_batch.c), what the daemon uses where the addon is built;
# lexadgram: the same on Node's dgram, the fallback; lexabare: batched, without the metrics counters.
start_lexa() { start_lexa_as lexa recvmmsg; }
start_lexadgram() { start_lexa_as lexadgram dgram --io dgram; }
start_lexabare() { start_lexa_as lexabare recvmmsg --bare; }
# start_lexa_as NAME IO [server.js flags...]: the lexa bench server, its pid and port in pid_NAME and port_NAME;
# it must say it serves UDP with IO.
start_lexa_as() {
  local name=$1 io=$2; shift 2
  taskset -c "$server_cpu" node dist/bench/server.js --instances "$instances" --port 0 "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.log" &
  local pid=$!; children+=("$pid")
  printf -v "pid_$name" '%s' "$pid"
  local waited=0
  until grep -q '^ready ' "$tmp/$name.out"; do
    kill -0 "$pid" 2>/dev/null || die "$name bench server exited: $(cat "$tmp/$name.log")"
    (( waited++ < START_TIMEOUT_S * 10 )) || die "$name bench server not ready after ${START_TIMEOUT_S}s"
    sleep 0.1
  done
  printf -v "port_$name" '%s' "$(sed -n 's/^ready .*port=\([0-9]*\).*/\1/p' "$tmp/$name.out")"
  local said; said=$(sed -n 's/^ready pid=\([0-9]*\).*/\1/p' "$tmp/$name.out")
  [[ $said == "$pid" ]] || die "$name bench server says pid $said, started as $pid"
  grep -q "io=$io" "$tmp/$name.out" || die "$name bench server is not serving with $io: $(cat "$tmp/$name.out" "$tmp/$name.log")"
}

# Waits for a server's first answer, then checks NOERROR and exactly the expected address for every check name.
verify() {
  local name=$1 pid=$2 port=$3 waited=0 q want out status answers got
  until dig +norec +time=1 +tries=1 @127.0.0.1 -p "$port" "$suffix." SOA >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$name exited before answering: $(tail -5 "$tmp/$name.log" 2>/dev/null)"
    (( waited++ < START_TIMEOUT_S * 5 )) || die "$name not answering on 127.0.0.1:$port after ${START_TIMEOUT_S}s"
    sleep 0.2
  done
  for q in $check_names; do
    want=$(awk -v n="$q" '$1 == n { print $2 }' "$tmp/records")
    out=$(dig +norec +time=2 +tries=2 @127.0.0.1 -p "$port" "$q" A 2>&1) || die "$name: dig $q failed: $out"
    status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
    answers=$(awk '/^;; ANSWER SECTION:/ { on = 1; next } /^$/ { on = 0 } on && $4 == "A" { print $5 }' <<<"$out")
    got=$(tr '\n' ' ' <<<"$answers" | sed 's/ $//')
    [[ $status == NOERROR && $got == "$want" ]] ||
      die "$name answered $q with status ${status:-none}, A '${got}'; expected NOERROR, A '$want'"$'\n'"$out"
  done
  local flags size
  flags=$(sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p' <<<"$out")
  size=$(sed -n 's/^;; MSG SIZE  rcvd: \([0-9]*\).*/\1/p' <<<"$out")
  printf '  %-8s 127.0.0.1:%-5s pid %-7s NOERROR, right address for %s names; flags [%s], %s-byte reply\n' \
    "$name" "$port" "$pid" "$(wc -w <<<"$check_names")" "$flags" "$size"
}

cpu_ticks() { # "utime stime" of every thread of $1, in clock ticks: fields 14 and 15 of /proc/<pid>/stat
  local stat; stat=$(<"/proc/$1/stat") || die "process $1 is gone"
  stat=${stat##*) }   # what follows the parenthesised command name (which may hold spaces) starts at field 3
  awk '{ print $12, $13 }' <<<"$stat"
}

cpu_busy() { # ticks CPU $1 spent on anything but idle and iowait, softirq included: /proc/stat's cpu<N> line
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# One measurement: appends "server round qps lost% cpu_us/query user_us/query sys_us/query cpu% completed
# busy_us/query" to $tmp/results.
measure() {
  local name=$1 round=$2 set=$3 pid port before after out user0 sys0 user1 sys1 busy0 busy1
  local pid_var=pid_$name port_var=port_$name
  pid=${!pid_var}; port=${!port_var}
  if (( warmup > 0 )); then
    taskset -c "$client_cpu" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries-$set" -c "$clients" -q "$outstanding" \
      -l "$warmup" >/dev/null 2>&1 || die "$name: warm-up dnsperf failed"
  fi
  before=$(cpu_ticks "$pid"); busy0=$(cpu_busy "$server_cpu")
  out=$(taskset -c "$client_cpu" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries-$set" -c "$clients" -q "$outstanding" \
    -l "$seconds" 2>&1) || die "$name: dnsperf failed: $out"
  after=$(cpu_ticks "$pid"); busy1=$(cpu_busy "$server_cpu")
  local completed lost_pct qps noerror elapsed
  completed=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
  lost_pct=$(sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' <<<"$out")
  qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
  elapsed=$(sed -n 's/^ *Run time (s): *\([0-9.]*\).*/\1/p' <<<"$out")
  noerror=$(sed -n 's/^ *Response codes:.*NOERROR \([0-9]*\).*/\1/p' <<<"$out")
  local nxdomain; nxdomain=$(sed -n 's/^ *Response codes:.*NXDOMAIN \([0-9]*\).*/\1/p' <<<"$out")
  [[ -n $completed && -n $qps && -n $lost_pct && -n $elapsed ]] || die "$name: cannot read dnsperf's output:"$'\n'"$out"
  (( completed > 0 )) || die "$name: no query completed"$'\n'"$out"
  # Every reply NOERROR, or NXDOMAIN for the mix's names that do not exist: anything else is a wrong answer.
  local expected_nx=0; [[ $set == mix ]] && expected_nx=${nxdomain:-0}
  [[ $(( ${noerror:-0} + expected_nx )) == "$completed" ]] ||
    die "$name: replies other than NOERROR (or NXDOMAIN in the mix):"$'\n'"$out"
  read -r user0 sys0 <<<"$before"
  read -r user1 sys1 <<<"$after"
  awk -v n="$name" -v r="$round" -v q="$qps" -v l="$lost_pct" -v c="$completed" -v hz="$clk_tck" -v e="$elapsed" \
    -v u=$((user1 - user0)) -v k=$((sys1 - sys0)) -v b=$((busy1 - busy0)) \
    'BEGIN { s = (u + k) / hz; printf "%s %d %.0f %.2f %.2f %.2f %.2f %.0f %d %.2f\n",
             n, r, q, l, s * 1e6 / c, u / hz * 1e6 / c, k / hz * 1e6 / c, 100 * s / e, c, b / hz * 1e6 / c }' \
    >>"$tmp/results-$set"
}

# ---------------------------------------------------------------------------------------------------------------
echo "lexa server benchmark: $instances A names (<name>.$suffix, TTL 0), dnsperf -c $clients -q $outstanding -l $seconds" \
  "after ${warmup}s warm-up, queries in random order"
echo "  server on CPU $server_cpu, dnsperf on CPU $client_cpu; $(nproc) CPUs, $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)"
echo "  node $(node --version), $(knotd --version | head -1), $(dnsmasq --version | head -1 | sed 's/ Copyright.*//')," \
  "dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
echo "  lexa serves a SYNTHETIC snapshot ($instances running containers made in src/bench/server.ts; a real LXD cannot" \
  "hold that many here); the DNS path measured (startPlainDns: UDP, handler, resolver, wire codec) is the daemon's own."
echo "  knot: 1 UDP worker, zone file, no journal. dnsmasq: --addn-hosts, --local=/$suffix/, no upstreams."
echo

for s in $servers; do
  case $s in knot | dnsmasq | lexa | lexadgram | lexabare) "start_$s" ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
echo "Checks (dig, before measuring):"
for s in $servers; do pid_var=pid_$s port_var=port_$s; verify "$s" "${!pid_var}" "${!port_var}"; done
echo

for set in a mix; do
  : >"$tmp/results-$set"
  for ((round = 1; round <= rounds; round++)); do
    for s in $servers; do
      printf '  measuring %-9s %-3s (round %d of %d) ...\n' "$s" "$set" "$round" "$rounds"
      measure "$s" "$round" "$set"
    done
  done
done
for set in a mix; do
echo
if [[ $set == a ]]; then echo "Query set a: the $instances host names, A:"; else
  echo "Query set mix: 40% A, 20% AAAA, 20% SRV (10 targets with additionals at N=1000), 20% NXDOMAIN:"; fi
echo
awk -v rounds="$rounds" -v order="$servers" -v scpu="$server_cpu" '
  # printf pads by bytes in some awks and by characters in others; "µ" is two bytes: x is what it adds.
  function row(a, b, c, d, e, f, g, h, i, j, x) {
    printf "%-8s %5s %9s %7s %*s %*s %*s %10s %10s %*s\n", a, b, c, d, 13 + x, e, 8 + x, f, 8 + x, g, h, i, 14 + x, j
  }
  BEGIN {
    row("server", "round", "QPS", "lost %", "CPU µs/query", "user µs", "sys µs", "server CPU", "completed",
        "CPU" scpu " µs/query", length("µ") - 1)
    row("--------", "-----", "---------", "-------", "-------------", "--------", "--------", "----------", "----------",
        "--------------", 0)
  }
  {
    row($1, $2, $3, sprintf("%.2f", $4), sprintf("%.2f", $5), sprintf("%.2f", $6), sprintf("%.2f", $7), $8 "%", $9,
        sprintf("%.2f", $10), 0)
    qps[$1] += $3; cpu[$1] += $5; n[$1]++
    if ($10 > 1.3 * $5) noisy = noisy sprintf("  %s round %d: CPU %s did %.2f µs/query, the server %.2f: something else ran there;" \
      " its QPS is suspect (its CPU per query much less so)\n", $1, $2, scpu, $10, $5)
  }
  END {
    if (noisy != "") printf "\nInterference (CPU%s µs/query > 1.3 x the server'"'"'s):\n%s", scpu, noisy
    print ""
    if (rounds > 1) print "Ratios of the means over " rounds " rounds:"
    k = split(order, names, " ")
    for (j = 1; j <= k; j++) {
      peer = names[j]
      if (peer == "lexa" || !("lexa" in n)) continue
      lq = qps["lexa"] / n["lexa"]; lc = cpu["lexa"] / n["lexa"]; pq = qps[peer] / n[peer]; pc = cpu[peer] / n[peer]
      printf "  lexa/%-8s CPU per query %.2fx   QPS %.2fx%s\n", peer, lc / pc, lq / pq, (peer == "lexabare" ? "   (what the metrics counters cost)" : "")
    }
  }' "$tmp/results-$set"
done
# The table's UDP row: the mean CPU per query over the rounds of set a, lexa and knot.
mean_cpu() { awk -v s="$1" '$1 == s { c += $5; n++ } END { if (n) printf "%.2f", c / n }' "$tmp/results-a"; }
udp_lexa=$(mean_cpu lexa); udp_knot=$(mean_cpu knot)
if [[ -n $udp_lexa && -n $udp_knot ]]; then
  row udp "UDP CPU per query, $instances names, A (mean of $rounds)" "$udp_lexa µs" "knot $udp_knot µs" "$(ratio "$udp_lexa" "$udp_knot")"
fi
echo
echo "QPS and lost % are dnsperf's. CPU µs/query = the server's utime + stime (all its threads, /proc/<pid>/stat) over"
echo "the measured run / queries completed; user and sys split it. Server CPU = that time over the run's wall time:"
echo "100% is its one CPU saturated; well below it, the single dnsperf thread on the other CPU set the QPS."
echo "CPU$server_cpu µs/query: all that CPU $server_cpu did during the run (/proc/stat, idle excluded; irq and softirq time included,"
echo "and any other process that ran there) per query: a cross-check of the server's own figure. Well above it means"
echo "something else was running on CPU $server_cpu, or the kernel charged network work to no process."

# Latency at a fixed rate (goal: lexa's p99 within 1 ms of knot's): the same paced client for every server.
latency_qps=${BENCH_LATENCY_QPS:-20000}
echo
echo "Latency at a fixed $latency_qps QPS, query set mix, 5 s each (node dist/bench/latency.js on CPU $client_cpu):"
echo
printf '%-9s %9s %9s %9s %9s %9s\n' server sent received "p50 µs" "p99 µs" "p99.9 µs"
declare -A p99
for s in $servers; do
  port_var=port_$s
  line=$(taskset -c "$client_cpu" node dist/bench/latency.js --port "${!port_var}" --qps "$latency_qps" --seconds 5 \
    --queries "$tmp/queries-mix") || die "$s: latency run failed"
  read -r sent received p50 p99v p999 < <(node -e 'const r = JSON.parse(process.argv[1]);
    console.log([r.sent, r.received, r.p50_us, r.p99_us, r.p999_us].join(" "))' "$line")
  p99[$s]=$p99v
  printf '%-9s %9s %9s %9s %9s %9s\n' "$s" "$sent" "$received" "$p50" "$p99v" "$p999"
done
if [[ -n ${p99[lexa]:-} && -n ${p99[knot]:-} ]]; then
  echo "  lexa p99 - knot p99: $(( ${p99[lexa]} - ${p99[knot]} )) µs"
fi

# ---------------------------------------------------------------------------------------------------------------
# Encrypted transports: lexa's DoT, DoH and DoQ beside dnsdist 1.7 (DoT, DoH) fronting knot, each as a ratio to
# UDP on the same server, measured the same way (dnsperf -m udp|dot|doh, the server side's own CPU; for
# dnsdist + knot both processes; DoH through h2load, see enc_measure). DoQ: dnsperf has none; the Go client (scripts/doq-client.sh) sends 10 connections
# of 2000 queries, each connection one query after another, so its rate is the client's, and lexa's CPU per query
# is what compares.
# Beside lexa's DoH, node:http2's floor: a bare stream server answering a fixed body (src/bench/h2-floor.ts).
# enc_measure NAME MODE PORT PIDS...: one dnsperf run of query set a; prints "CPU µs/query QPS".
enc_measure() {
  local name=$1 mode=$2 port=$3; shift 3
  local pids=("$@") t0=0 t1=0 pid u k out completed qps
  # dnsperf 2.10 (Debian) completes only a query or two over DoH against any server here; h2load (nghttp2, C) drives
  # DoH as issue 19 measures it: HTTP/2 POST, 10 connections x 10 streams, for a fixed time (one query: h2load sends
  # one body), bounded by `timeout` should it hang.
  run_load() {
    if [[ $mode == doh ]]; then
      timeout $(( $1 + H2LOAD_GRACE_S )) taskset -c "$client_cpu" h2load -D "$1" -c 10 -m 10 -d "$tmp/query-a.bin" \
        -H 'content-type: application/dns-message' "https://127.0.0.1:$port/dns-query" 2>&1
    else
      taskset -c "$client_cpu" dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$tmp/queries-a" -c "$clients" \
        -q "$outstanding" -l "$1" 2>&1
    fi
  }
  run_load "$warmup" >/dev/null 2>&1 || die "$name $mode: warm-up failed"
  for pid in "${pids[@]}"; do read -r u k < <(cpu_ticks "$pid"); t0=$(( t0 + u + k )); done
  out=$(run_load "$seconds") || die "$name $mode: load failed: $out"
  for pid in "${pids[@]}"; do read -r u k < <(cpu_ticks "$pid"); t1=$(( t1 + u + k )); done
  if [[ $mode == doh ]]; then
    completed=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    qps=$(sed -n 's/^finished in [0-9.]*s, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  else
    completed=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
    qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
  fi
  (( ${completed:-0} > 0 )) || die "$name $mode: no query completed"$'\n'"$out"
  awk -v t=$(( t1 - t0 )) -v hz="$clk_tck" -v c="$completed" -v q="$qps" 'BEGIN { printf "%.2f %.0f\n", t / hz * 1e6 / c, q }'
}
if [[ $encrypted != 0 ]]; then
  # The DoH query (h2load POSTs one body): the first name's A, as dnsperf's set a asks, recursion desired.
  node -e 'process.stdout.write(require("dns-packet").encode({ type: "query", id: 0, flags: 256,
    questions: [{ name: process.argv[1], type: "A" }] }))' "$(awk 'NR == 1 { print $1 }' "$tmp/records")" >"$tmp/query-a.bin"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >/dev/null 2>&1 ||
    die "openssl could not make a certificate for dnsdist"
  start_lexa_as lexaenc recvmmsg --encrypted
  enc_dot=$(sed -n 's/.* dot=\([0-9]*\).*/\1/p' "$tmp/lexaenc.out")
  enc_doh=$(sed -n 's/.* doh=\([0-9]*\).*/\1/p' "$tmp/lexaenc.out")
  enc_doq=$(sed -n 's/.* doq=\([0-9]*\).*/\1/p' "$tmp/lexaenc.out")
  have_knot=0; [[ " $servers " == *" knot "* ]] && have_knot=1
  if (( have_knot )); then
    dd_udp=$(free_port); dd_dot=$(free_port); dd_doh=$(free_port)
    cat >"$tmp/dnsdist.conf" <<EOF
setSecurityPollSuffix("")
setLocal("127.0.0.1:$dd_udp")
addTLSLocal("127.0.0.1:$dd_dot", "$tmp/tls.crt", "$tmp/tls.key")
addDOHLocal("127.0.0.1:$dd_doh", "$tmp/tls.crt", "$tmp/tls.key", "/dns-query")
newServer({ address = "127.0.0.1:$port_knot", healthCheckMode = "up" })
EOF
    taskset -c "$server_cpu" dnsdist --supervised --disable-syslog -C "$tmp/dnsdist.conf" >"$tmp/dnsdist.log" 2>&1 &
    pid_dnsdist=$!; children+=("$pid_dnsdist"); port_dnsdist=$dd_udp
    verify dnsdist "$pid_dnsdist" "$dd_udp"
  fi
  echo
  echo "Encrypted transports (query set a, dnsperf -c $clients -q $outstanding -l $seconds; DoH: h2load -c 10 -m 10 -D $seconds,"
  echo "POST of one A query; server side on CPU $server_cpu):"
  echo
  printf '%-22s %14s %10s %14s\n' "server / transport" "CPU µs/query" QPS "× its UDP"
  for mode in udp dot doh; do
    case $mode in udp) p=$port_lexaenc ;; dot) p=$enc_dot ;; doh) p=$enc_doh ;; esac
    read -r cpu qps < <(enc_measure lexa "$mode" "$p" "$pid_lexaenc")
    [[ $mode == udp ]] && lexa_udp=$cpu
    [[ $mode == doh ]] && lexa_doh=$cpu
    printf '%-22s %14s %10s %14s\n' "lexa $mode" "$cpu" "$qps" "$(awk -v a="$cpu" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')"
  done
  # The same daemon with HTTP/2 on node:http2 (LEXA_DOH_HTTP2=node) instead of the native session: what the
  # native session saves.
  LEXA_DOH_HTTP2=node start_lexa_as lexaencnode recvmmsg --encrypted
  read -r cpu qps < <(enc_measure lexa doh "$(sed -n 's/.* doh=\([0-9]*\).*/\1/p' "$tmp/lexaencnode.out")" "$pid_lexaencnode")
  lexa_doh_node=$cpu
  printf '%-22s %14s %10s %14s\n' "lexa doh node:http2" "$cpu" "$qps" "$(awk -v a="$cpu" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')"
  stop_pid "$pid_lexaencnode"
  # The floor under lexa's DoH on node:http2: a bare node:http2 stream server answering a fixed body (src/bench/h2-floor.ts),
  # driven the same way; what lexa's DoH costs above it is lexa's.
  taskset -c "$server_cpu" node dist/bench/h2-floor.js >"$tmp/h2floor.out" 2>"$tmp/h2floor.log" &
  pid_h2floor=$!; children+=("$pid_h2floor")
  waited=0
  until grep -q '^ready ' "$tmp/h2floor.out"; do
    kill -0 "$pid_h2floor" 2>/dev/null || die "h2-floor exited: $(cat "$tmp/h2floor.log")"
    (( waited++ < START_TIMEOUT_S * 10 )) || die "h2-floor not ready after ${START_TIMEOUT_S}s"
    sleep 0.1
  done
  floor_port=$(sed -n 's/^ready .*port=\([0-9]*\).*/\1/p' "$tmp/h2floor.out")
  read -r cpu qps < <(enc_measure h2floor doh "$floor_port" "$pid_h2floor")
  printf '%-22s %14s %10s %14s\n' "node:http2 floor doh" "$cpu" "$qps" "$(awk -v a="$cpu" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')"
  stop_pid "$pid_h2floor"
  # DoQ: 10 connections × 2000 queries, each connection one query after another (the Go client's shape): first all
  # 10 connections at once (10 queries in flight, the nearest the client comes to dnsperf's load), then one
  # connection after another (1 in flight: every query pays a wake-up of both processes, which for plain UDP alone
  # costs several times its batched figure here; docs/performance.md, DoQ).
  # The same one-at-a-time shape over plain UDP (src/bench/udp-serial.ts): the base for the "1 in flight" ratio.
  read -r u0 k0 < <(cpu_ticks "$pid_lexaenc")
  serial_out=$(taskset -c "$client_cpu" node dist/bench/udp-serial.js --port "$port_lexaenc" --name bench-1.lexa --count 20000)
  read -r u1 k1 < <(cpu_ticks "$pid_lexaenc")
  serial_ok=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$serial_out")
  (( ${serial_ok:-0} > 0 )) || die "udp-serial: no reply: $serial_out"
  udp_serial=$(awk -v t=$(( u1 + k1 - u0 - k0 )) -v hz="$clk_tck" -v c="$serial_ok" 'BEGIN { printf "%.2f", t / hz * 1e6 / c }')
  printf '%-22s %14s %10s %14s\n' "lexa udp 1 in flight" "$udp_serial" "($serial_ok ok)" "$(awk -v a="$udp_serial" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')"
  doq_client=$(bash scripts/doq-client.sh 2>/dev/null | tail -1)
  if [[ -x $doq_client ]]; then
    for shape in parallel sequential; do
      label="lexa doq"; flag=-parallel
      [[ $shape == sequential ]] && { label="lexa doq 1 in flight"; flag=; }
      read -r u0 k0 < <(cpu_ticks "$pid_lexaenc")
      doq_out=$(taskset -c "$client_cpu" "$doq_client" $flag -insecure -q -server "127.0.0.1:$enc_doq" -name bench-1.lexa \
        -conns 10 -count 2000 2>&1 | tail -1)
      read -r u1 k1 < <(cpu_ticks "$pid_lexaenc")
      doq_ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$doq_out")
      if (( ${doq_ok:-0} > 0 )); then
        cpu=$(awk -v t=$(( u1 + k1 - u0 - k0 )) -v hz="$clk_tck" -v c="$doq_ok" 'BEGIN { printf "%.2f", t / hz * 1e6 / c }')
        printf '%-22s %14s %10s %14s\n' "$label" "$cpu" "($doq_ok ok)" "$(awk -v a="$cpu" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')"
        [[ $shape == parallel ]] &&
          row doq "DoQ CPU per query (Go client, 10 conns × 2000 at once), × lexa's UDP" "$cpu µs" "lexa UDP $lexa_udp µs" "$(ratio "$cpu" "$lexa_udp")"
        [[ $shape == sequential ]] && printf '%-22s %14s %10s %14s\n' "  × udp 1 in flight" "" "" \
          "$(awk -v a="$cpu" -v b="$udp_serial" 'BEGIN { printf "%.2f", a / b }')"
      else
        echo "$label: the Go client reported: $doq_out"
      fi
    done
  else
    echo "lexa doq: not measured (scripts/doq-client.sh could not build the Go DoQ client)"
  fi
  if (( have_knot )); then
    for mode in udp dot doh; do
      case $mode in udp) p=$dd_udp ;; dot) p=$dd_dot ;; doh) p=$dd_doh ;; esac
      read -r cpu qps < <(enc_measure dnsdist "$mode" "$p" "$pid_dnsdist" "$pid_knot")
      [[ $mode == udp ]] && dd_udp_cpu=$cpu
      [[ $mode == doh ]] && dd_doh_cpu=$cpu
      printf '%-22s %14s %10s %14s\n' "dnsdist+knot $mode" "$cpu" "$qps" "$(awk -v a="$cpu" -v b="$dd_udp_cpu" 'BEGIN { printf "%.2f", a / b }')"
    done
    stop_pid "$pid_dnsdist"
  fi
  if [[ -n ${lexa_doh:-} ]]; then
    lexa_x=$(awk -v a="$lexa_doh" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')
    dd_x=${dd_doh_cpu:+$(awk -v a="$dd_doh_cpu" -v b="$dd_udp_cpu" 'BEGIN { printf "%.2f", a / b }')}
    row doh "DoH CPU per query (HTTP/2 POST, native session), × its own UDP" "$lexa_doh µs = ${lexa_x}× UDP" \
      "${dd_x:+dnsdist+knot ${dd_x}× UDP}" "$(ratio "$lexa_x" "${dd_x:-}")"
    row dohnode "DoH on node:http2 (LEXA_DOH_HTTP2=node), × its own UDP" \
      "$lexa_doh_node µs = $(awk -v a="$lexa_doh_node" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')× UDP" \
      "${dd_x:+dnsdist+knot ${dd_x}× UDP}" "$(ratio "$(awk -v a="$lexa_doh_node" -v b="$lexa_udp" 'BEGIN { printf "%.2f", a / b }')" "${dd_x:-}")"
  fi
  stop_pid "$pid_lexaenc"
fi

# Anything a server complained about (dnsmasq's expected "no upstream servers" aside).
for s in $servers; do
  problems=$(grep -iE 'error|warn|fail' "$tmp/$s.log" 2>/dev/null | grep -v 'no upstream servers configured' || true)
  [[ -z $problems ]] || { echo; echo "$s logged:"; tail -5 <<<"$problems"; }
done
for s in $servers; do pid_var=pid_$s; stop_pid "${!pid_var}"; done

if [[ $micro != 0 ]]; then
  echo
  echo "In-process micro-benchmark of the handler (node dist/bench/dns.js, on CPU $server_cpu):"
  echo
  taskset -c "$server_cpu" node dist/bench/dns.js
fi

if [[ $pmap != 0 ]]; then
  echo
  echo "Persistent maps, in process (node dist/bench/pmap.js, on CPU $server_cpu):"
  echo
  taskset -c "$server_cpu" node dist/bench/pmap.js
fi

if [[ $growth != 0 ]]; then
  echo
  echo "Growth: the daemon against a SIMULATED LXD (node dist/bench/growth.js; lexa on CPU $server_cpu, the driver on $client_cpu):"
  echo
  BENCH_SERVER_CPU=$server_cpu taskset -c "$client_cpu" node dist/bench/growth.js
fi

if [[ $checks != 0 ]]; then
  echo
  echo "Server-side checks against SIMULATED targets (node dist/bench/checks.js; the checker on CPU $server_cpu, the targets on $client_cpu):"
  echo
  taskset -c "$server_cpu" node --expose-gc dist/bench/checks.js --targets-cpu "$client_cpu"
fi

if [[ $real_lxd != 0 ]]; then
  echo
  if lxc image info lexa-busybox >/dev/null 2>&1; then
    echo "Propagation on the real LXD (node dist/bench/propagation.js):"
    echo
    node dist/bench/propagation.js --launches 7
    echo
    echo "Start-up on the real LXD (node dist/bench/startup.js):"
    echo
    node dist/bench/startup.js --containers 50 --starts 3
  else
    echo "Propagation and start-up: not measured (no LXD with the lexa-busybox image here; sudo bash scripts/testbed.sh sets it up)"
  fi
fi

if [[ $wakeup != 0 ]]; then
  echo
  echo "Wake-up of waiting readers, in process against a SIMULATED snapshot (node dist/bench/wakeup.js, on CPU $server_cpu):"
  echo
  BENCH_CLIENT_CPU=$client_cpu taskset -c "$server_cpu" node --expose-gc dist/bench/wakeup.js
fi

if [[ $sites != 0 ]]; then
  echo
  echo "Three sites against SIMULATED LXDs (node dist/bench/sites.js; lexa on CPU $server_cpu, the driver on $client_cpu):"
  echo
  BENCH_SERVER_CPU=$server_cpu taskset -c "$client_cpu" node dist/bench/sites.js
fi

# ---------------------------------------------------------------------------------------------------------------
# The table: one row per figure of issue 19 (and the rows measured beside them), in this order, each from this run.
# TABLE entries: id|figure when not measured|the variable that skips its section.
TABLE=(
  "propagation|\`lxc launch\` returns → A answers|BENCH_LXD"
  "doh|DoH CPU per query, × its own UDP|BENCH_ENCRYPTED"
  "dohnode|DoH on node:http2, × its own UDP|BENCH_ENCRYPTED"
  "doq|DoQ CPU per query, × lexa's UDP|BENCH_ENCRYPTED"
  "udp|UDP CPU per query|BENCH_SERVERS"
  "rss-10|RSS once ready, N = 10|BENCH_GROWTH"
  "rss-10000|RSS once ready, N = 10,000|BENCH_GROWTH"
  "wake-blocking|blocking queries woken by one change|BENCH_WAKEUP"
  "wake-sse|SSE streams woken by one change|BENCH_WAKEUP"
  "sites-ready|three sites (SIMULATED): start → ready|BENCH_SITES"
  "sites-rss|three sites (SIMULATED): RSS once ready|BENCH_SITES"
  "sites-cpu|three sites (SIMULATED): CPU per query|BENCH_SITES"
)
declare -A skipped_by=([BENCH_LXD]=$real_lxd [BENCH_ENCRYPTED]=$encrypted [BENCH_GROWTH]=$growth [BENCH_WAKEUP]=$wakeup
  [BENCH_SITES]=$sites [BENCH_SERVERS]=1)
echo
echo "The table (issue 19): lexa, its peer and the ratio, every figure from this run (on a machine others may share:"
echo "see each section's interference notes):"
echo
echo "| figure | lexa | peer | ratio |"
echo "|---|---|---|---|"
for entry in "${TABLE[@]}"; do
  IFS='|' read -r id figure flag <<<"$entry"
  line=$(awk -F'|' -v id="$id" '$1 == id { line = $0 } END { print line }' "$BENCH_ROWS")
  if [[ -n $line ]]; then
    IFS='|' read -r _ figure lexa peer ratio_cell <<<"$line"
    echo "| $figure | $lexa | $peer | $ratio_cell |"
  elif [[ ${skipped_by[$flag]} == 0 ]]; then
    echo "| $figure | not measured ($flag=0) | | |"
  elif [[ $flag == BENCH_SERVERS ]]; then
    echo "| $figure | not measured (BENCH_SERVERS=\"$servers\" lacks knot or lexa) | | |"
  else
    echo "| $figure | not measured (its section above says why) | | |"
  fi
done
