#!/usr/bin/env bash
# The hermetic tier (`npm run test:unit`): every test file that needs no LXD, no root and no peer program (dig,
# kdig, knot, unbound, dnsdist, haproxy, openssl, the DoQ client...), only node and loopback sockets. Fast enough
# to run on every edit; `scripts/test.sh` still runs everything, these files included. Ends with tap's summary.
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
# HCL parser, the CLI), and the extra one fills that wait (on 2 cores: 59 s against 64 s with 2). LEXA_UNIT_JOBS
# overrides it.
jobs=${LEXA_UNIT_JOBS:-$(( $(nproc) + 1 ))}

if [[ ${LEXA_UNIT_JAILED:-} != 1 ]]; then
  run=(npx tap -R "${LEXA_UNIT_REPORTER:-terse}" --jobs "$jobs" "${files[@]}")
  ns=(unshare --mount --net)
  [[ $(id -u) -eq 0 ]] || ns=(unshare --map-root-user --mount --net)
  if "${ns[@]}" true 2>/dev/null; then
    exec "${ns[@]}" env LEXA_UNIT_JAILED=1 bash "$0" "${files[@]}"
  fi
  echo "scripts/test-unit.sh: cannot create namespaces here; running without the hermetic jail" >&2
  exec "${run[@]}"
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
exec npx tap -R "${LEXA_UNIT_REPORTER:-terse}" --jobs "$jobs" "${files[@]}"
