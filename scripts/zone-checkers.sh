#!/usr/bin/env bash
# The independent zone checkers test/reliability/zone-checkers.test.ts runs against lexa (Debian 12, as root):
# Zonemaster's CLI (zonemaster-cli 5.0.2) and DNSViz (0.9.4), both from bookworm main, plus knot (scripts/dns-peers.sh)
# for the local root the test gives them. Idempotent and quiet: installs only what is missing. Nothing here runs a
# checker or reaches outside: the test runs both inside a network namespace that has only loopback.
set -euo pipefail
PACKAGES=(zonemaster-cli dnsviz)

[[ $(id -u) -eq 0 ]] || { echo "scripts/zone-checkers.sh: run as root" >&2; exit 1; }
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "[zone-checkers] installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
