#!/usr/bin/env bash
# The README's second command: set up a real LXD (scripts/testbed.sh) and the peers the tests drive, install,
# type-check and build lexa, then run every test against the real things. Ends with "N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

[[ $(id -u) -eq 0 ]] || { echo "scripts/test.sh: run as root (it installs and starts LXD)" >&2; exit 1; }
bash scripts/testbed.sh
# test/cluster: a real 2-member LXD cluster beside the standalone LXD (own LXD_DIRs, namespaces, bridge).
bash scripts/cluster-bed.sh
# test/reliability: a standalone LXD of its own that the fault tests may kill, freeze and untrust.
bash scripts/fault-bed.sh
bash scripts/incus.sh   # Incus 6 beside LXD: the core lifecycle set runs against it too (below)
if [[ -f scripts/doq-client.sh ]]; then bash scripts/doq-client.sh; fi
bash scripts/agent-runtime.sh   # node for the agent tests, bind-mounted into busybox containers
sh scripts/prometheus-bin.sh promtool >/dev/null   # the Prometheus text-format checker the metrics tests run
bash scripts/dns-peers.sh   # knot, unbound, dnsdist
bash scripts/zone-checkers.sh   # Zonemaster and DNSViz (test/reliability/zone-checkers.test.ts)
bash scripts/load-tools.sh   # dnsperf: test/reliability drives lexa with it
sh scripts/catalog-peers.sh >/dev/null   # python3-consul and the prometheus server (Consul API, HTTP SD tests)

# The C compiler for the native addons (built at npm ci) and their AddressSanitizer builds (test/native): gcc
# brings libasan with it. nghttp2's headers for the HTTP/2 session addon (its library is the one inside Node).
if ! command -v gcc >/dev/null || [[ ! -e $(gcc -print-file-name=libasan.so) ]] || [[ ! -f /usr/include/nghttp2/nghttp2.h ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev libnghttp2-dev
fi

# npm ci when the lock file changed since the last install (or there is none): a clean clone always installs.
stamp=node_modules/.lexa-lock-stamp
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
# The native addons (npm ci builds them; a checkout whose node_modules predates one, or an edited source, gets them
# here). Without a compiler or headers it says so and lexa uses dgram and node:http2; the UDP and HTTP/2 native
# tests then fail on purpose, since CI must exercise the path users get.
for addon in udp_batch h2_session; do
  if [[ ! -f native/build/$addon.node || native/$addon.c -nt native/build/$addon.node ]]; then
    node scripts/build-native.mjs
    break
  fi
done
npm run build
npm run typecheck   # src and test, strict

# The integration tests that run a second time against Incus (LEXA_TEST_DAEMON=incus, see test/helpers/lxd-cli.ts).
# Skipped when the caller names its own files. lease-watch: Incus keeps its lease files under /var/lib/incus.
INCUS_SET=(test/integration/lxd-watch.test.ts test/integration/traefik.test.ts test/integration/lease-watch.test.ts)
# The DoH files that run a second time with LEXA_DOH_HTTP2=node (below).
NODE_HTTP2_SET=(test/doh/doh.test.ts test/doh/h2-stream.test.ts)

# Runs tap with "$@"; adds its counts (tap closes with a line like "# { total: 80, pass: 78, fail: 1, skip: 1 }")
# to the totals, and its exit status to $status. A run that prints no summary counts as failed.
pass=0 fail=0 skip=0 status=0
run_tap() {
  local log summary rc
  log=$(mktemp /tmp/lexa-tap.XXXXXX)
  set +e
  npx tap -R tap "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1 || true)
  rm -f "$log"
  if [[ -z $summary ]]; then
    echo "scripts/test.sh: tap printed no summary (exit $rc)" >&2
    fail=$(( fail + 1 )); status=$(( rc == 0 ? 1 : rc )); return
  fi
  count() { sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary"; }
  local p f s t
  p=$(count pass); f=$(count fail); s=$(count skip); t=$(count todo)
  pass=$(( pass + ${p:-0} )); fail=$(( fail + ${f:-0} )); skip=$(( skip + ${s:-0} + ${t:-0} ))
  [[ $rc -ne 0 ]] && status=$rc
  return 0
}

# The hermetic tier first, exactly as `npm run test:unit` runs it (its namespaces, no peer program, its runner), so
# that a file of it that starts needing LXD or a peer, or the tier's runner itself, fails CI. Its assertions are
# not added to the counts: the same files run again under tap below. A failure counts as one failed test.
if [[ $# -eq 0 ]]; then
  echo "# the hermetic tier (npm run test:unit)"
  unit_log=$(mktemp /tmp/lexa-unit-tier.XXXXXX)
  if bash scripts/test-unit.sh >"$unit_log" 2>&1; then
    tail -2 "$unit_log"
  else
    cat "$unit_log"
    echo "scripts/test.sh: the hermetic tier failed" >&2
    fail=$(( fail + 1 )); status=1
  fi
  rm -f "$unit_log"
fi

run_tap "$@"
if [[ $# -eq 0 ]]; then
  echo "# against Incus: ${INCUS_SET[*]}"
  LEXA_TEST_DAEMON=incus run_tap "${INCUS_SET[@]}"
  # DoH's HTTP/2 on node:http2 (h2-stream.ts), the stack lexa falls back to without the native session: the same
  # DoH files again with it forced (the first pass served HTTP/2 natively).
  echo "# DoH on node:http2: ${NODE_HTTP2_SET[*]}"
  LEXA_DOH_HTTP2=node run_tap "${NODE_HTTP2_SET[@]}"
fi

echo "$pass passed, $fail failed, $skip skipped"
if [[ $skip -gt 0 ]]; then
  echo "scripts/test.sh: skipped tests are not allowed; every test must run" >&2
  exit 1
fi
exit "$status"
