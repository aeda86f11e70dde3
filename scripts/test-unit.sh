#!/usr/bin/env bash
# The hermetic tier (`npm run test:unit`): every test file that needs no LXD, no root and no peer program (dig,
# kdig, knot, unbound, dnsdist, haproxy, openssl, the DoQ client...), only node and loopback sockets. Fast enough
# to run on every edit; `scripts/test.sh` runs it first, then every file (these too) under tap's runner. Ends with
# the tier's summary in tap's form ("# { total: N, pass: N, fail: N, skip: N }").
#
# Hermetic is enforced, not assumed: as root (or where unprivileged user namespaces work) the files run in fresh
# network and mount namespaces where only loopback exists, the LXD/Incus socket directories are empty and every peer
# program is /dev/null, so a file that starts needing one fails here instead of quietly joining the tier.
# Usage: scripts/test-unit.sh [tap files...]  (default: the tier below)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

# The tier: whole folders whose files are hermetic by design, and the hermetic files of the transport folders.
# Left out, each for the peer it runs: test/dns/rate-limit.test.ts (dig), test/dot/dot.test.ts (kdig, dig),
# test/doh/doh.test.ts (kdig, dig, curl), test/doq/doq.test.ts (the DoQ client), test/fair/listeners.test.ts (kdig,
# dig); test/integration, test/peers and test/cluster need LXD or the peers throughout.
NOT_HERMETIC=(test/dns/rate-limit.test.ts)
TIER=(test/unit/*.test.ts test/dns/*.test.ts test/doh/exchange.test.ts test/doh/h2-stream.test.ts test/doh/h2-native.test.ts test/doq/framing.test.ts test/doq/streams.test.ts test/fair/backpressure.test.ts)

files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
  for f in "${TIER[@]}"; do
    [[ " ${NOT_HERMETIC[*]} " == *" $f "* ]] || files+=("$f")
  done
fi

# A few files run the built CLI (dist/cli.js): build when any source is newer than it.
if [[ ! -f dist/cli.js ]] || [[ -n $(find src -newer dist/cli.js -print -quit) ]]; then
  npm run build >/dev/null
fi

# Programs the other tiers drive; inside the jail each is replaced by /dev/null (not executable: running it fails).
PEERS=(dig kdig delv knotd knotc unbound dnsdist haproxy coredns openssl curl promtool lxc lxd incus)

# Files run in parallel, one more than the cores: several spend part of their time waiting on a child process (the
# HCL parser, the CLI), and the extra one fills that wait. LEXA_UNIT_JOBS overrides it.
jobs=${LEXA_UNIT_JOBS:-$(( $(nproc) + 1 ))}

# Each file is a tap test run as `node` runs it (with the repository's TypeScript loader), under tap's own per-file
# limit of 300 s, and the tier sums the summaries the files print. Not through tap's runner: measured on this tier
# (71 files, 2 cores, nothing else running), its per-file machinery (the processinfo hook in every test process,
# the terse reporter's rendering) took 137 s of CPU and 74 s of wall time, this runner 86–89 s and 47–48 s (the
# longest files first: 52 s in the given order).
# The tier's longest files (several seconds each), started first.
SLOW=(test/unit/imports.test.ts test/doh/h2-native.test.ts test/unit/config.test.ts test/unit/doc-examples.test.ts
  test/unit/agent-trust.test.ts test/unit/agent-config.test.ts test/fair/backpressure.test.ts test/unit/cluster.test.ts
  test/unit/agent-protocol.test.ts test/unit/log.test.ts test/dns/servers.test.ts test/dns/udp-stall.test.ts)
run_tier() {
  local out f log rc summary failed=0 total=0 pass=0 fail=0 skip=0
  out=$(mktemp -d /tmp/lexa-unit.XXXXXX)
  # The longest files first, so that none of them starts last and runs alone (the rest in the order given).
  local first=() rest=()
  for f in "$@"; do
    if [[ " ${SLOW[*]} " == *" $f "* ]]; then first+=("$f"); else rest+=("$f"); fi
  done
  printf '%s\0' "${first[@]}" "${rest[@]}" | xargs -0 -P "$jobs" -I{} bash -c '
    log=$2/$(tr / _ <<<"$1")
    timeout --kill-after=10 300 node --enable-source-maps --import=./test/loader/register.mjs "$1" >"$log.tap" 2>&1
    echo $? >"$log.rc"' _ {} "$out"
  count() { local n; n=$(sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary"); echo "${n:-0}"; }
  for f in "$@"; do
    log=$out/$(tr / _ <<<"$f")
    rc=$(cat "$log.rc" 2>/dev/null || echo 1)
    # The file's own summary: the last one at the top level ("# { total: 5, pass: 5 }").
    summary=$(grep -E '^# \{ total: ' "$log.tap" | tail -1 || true)
    total=$(( total + $(count total) )); pass=$(( pass + $(count pass) ))
    fail=$(( fail + $(count fail) )); skip=$(( skip + $(count skip) + $(count todo) ))
    if [[ $rc -ne 0 || -z $summary || $(count fail) -gt 0 ]]; then
      failed=$(( failed + 1 ))
      echo "not ok - $f (exit $rc${summary:+, $summary})"
      { grep -E '^\s*not ok ' "$log.tap" || true; } | head -20 | sed 's/^/    /'
      echo "    --- the last lines of its output:"
      tail -30 "$log.tap" | sed 's/^/    /'
    else
      echo "ok - $f $({ grep -E '^# time=' "$log.tap" || true; } | tail -1 | sed 's/^# //')"
    fi
  done
  rm -rf "$out"
  echo "# files: $#, failed: $failed"
  echo "# { total: $total, pass: $pass, fail: $fail, skip: $skip }"
  [[ $failed -eq 0 && $skip -eq 0 ]]
}

if [[ ${LEXA_UNIT_JAILED:-} != 1 ]]; then
  ns=(unshare --mount --net)
  [[ $(id -u) -eq 0 ]] || ns=(unshare --map-root-user --mount --net)
  if "${ns[@]}" true 2>/dev/null; then
    exec "${ns[@]}" env LEXA_UNIT_JAILED=1 bash "$0" "${files[@]}"
  fi
  echo "scripts/test-unit.sh: cannot create namespaces here; running without the hermetic jail" >&2
  run_tier "${files[@]}"
  exit
fi

# Inside the namespaces: loopback up, the peers and the LXD/Incus sockets out of reach, then the tier.
ip link set lo up
for p in "${PEERS[@]}"; do
  while read -r path; do mount --bind /dev/null "$path"; done < <(type -aP "$p" | sort -u)
done
for d in /var/lib/lxd /var/snap/lxd/common/lxd /var/lib/incus; do
  [[ -d $d ]] && mount -t tmpfs none "$d"
done
export LXD_DIR=/nonexistent INCUS_DIR=/nonexistent
run_tier "${files[@]}"
