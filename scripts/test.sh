#!/usr/bin/env bash
# The README's second command: set up a real LXD (scripts/testbed.sh) and the peers the tests drive, install,
# type-check and build lexa, then run every test against the real things. Ends with "N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

[[ $(id -u) -eq 0 ]] || { echo "scripts/test.sh: run as root (it installs and starts LXD)" >&2; exit 1; }
bash scripts/testbed.sh
if [[ -f scripts/doq-client.sh ]]; then bash scripts/doq-client.sh; fi
bash scripts/dns-peers.sh   # knot, unbound, dnsdist

# npm ci when the lock file changed since the last install (or there is none): a clean clone always installs.
stamp=node_modules/.lexa-lock-stamp
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
npm run build
npm run typecheck   # src and test, strict

log=$(mktemp /tmp/lexa-tap.XXXXXX)
set +e
npx tap -R tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# tap closes with a line like "# { total: 80, pass: 78, fail: 1, skip: 1 }"; print it in the plain form too.
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1 || true)
rm -f "$log"
if [[ -z $summary ]]; then
  echo "scripts/test.sh: tap printed no summary (exit $status)" >&2
  exit $(( status == 0 ? 1 : status ))
fi
count() { sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary"; }
pass=$(count pass); fail=$(count fail); skip=$(count skip); todo=$(count todo)
echo "${pass:-0} passed, ${fail:-0} failed, $(( ${skip:-0} + ${todo:-0} )) skipped"
if [[ ${skip:-0} -gt 0 || ${todo:-0} -gt 0 ]]; then
  echo "scripts/test.sh: skipped tests are not allowed; every test must run" >&2
  exit 1
fi
exit "$status"
