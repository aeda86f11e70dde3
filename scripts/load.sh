#!/usr/bin/env bash
# `npm run churn` and `npm run soak`: the long load runs on the real LXD of scripts/testbed.sh (which must be up).
# Installs dnsperf when missing, builds dist/ when a source is newer, then runs dist/bench/<churn|soak>.js with
# the remaining arguments (each prints its options in its header comment).
#   npm run churn -- --seconds 60 --containers 20        npm run soak -- --minutes 60
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
what=${1:?usage: scripts/load.sh churn|soak [options]}
shift
[[ $what == churn || $what == soak ]] || { echo "scripts/load.sh: churn or soak, not $what" >&2; exit 2; }
bash scripts/load-tools.sh
if [[ ! -f dist/bench/$what.js || -n $(find src -name '*.ts' -newer "dist/bench/$what.js" -print -quit) ]]; then
  npm run build --silent
fi
exec node "dist/bench/$what.js" "$@"
