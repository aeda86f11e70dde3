#!/usr/bin/env bash
# The DNS peers the integration tests run against lexa (Debian 12, as root): knot (a secondary that transfers
# lexa's zones and follows its NOTIFY), unbound and dnsdist (forwarders in front of lexa). Idempotent and quiet:
# installs only what is missing. The tests start their own instances of each on their own ports and configs;
# nothing here starts a daemon (the packages' own services stay off: the tests never use port 53).
set -euo pipefail
PACKAGES=(knot unbound dnsdist)

[[ $(id -u) -eq 0 ]] || { echo "scripts/dns-peers.sh: run as root" >&2; exit 1; }
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "[dns-peers] installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
