#!/usr/bin/env bash
# The load generator the churn and soak runs drive lexa with (Debian 12, as root): dnsperf 2.10. Idempotent and
# quiet: installs only what is missing. scripts/test.sh calls it (test/reliability), and so do `npm run churn` and
# `npm run soak` (scripts/load.sh).
set -euo pipefail
PACKAGES=(dnsperf)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || { echo "scripts/load-tools.sh: ${missing[*]} missing; run as root to install" >&2; exit 1; }
echo "[load-tools] installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
