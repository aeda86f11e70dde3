#!/usr/bin/env bash
# Three demo containers with lexa service declarations, for trying lexa by hand.
#
#   web-1  http:80 (tags frontend,blue)   https:443
#   web-2  http:80 (tags frontend,green)  https:443
#   db-1   mysql:3306 (tags primary)
#
# Idempotent: creates missing containers (from the lexa-busybox image, with their config set
# at creation), starts stopped ones, and brings each one's user.lexa.* keys to exactly the
# set below (changed keys are set, other user.lexa.* keys are removed; nothing is touched
# when all match, so a re-run causes no LXD events). Runs scripts/testbed.sh first if LXD
# or the image is not there.
set -euo pipefail
exec </dev/null # lxc reads YAML from a non-terminal stdin on launch; never let it wait on one.

IMAGE=lexa-busybox
NAMES=(web-1 web-2 db-1)
declare -A SERVICES=(
  [web-1]="user.lexa.service.http.port=80 user.lexa.service.http.tags=frontend,blue user.lexa.service.https.port=443"
  [web-2]="user.lexa.service.http.port=80 user.lexa.service.http.tags=frontend,green user.lexa.service.https.port=443"
  [db-1]="user.lexa.service.mysql.port=3306 user.lexa.service.mysql.tags=primary"
)

log() { printf '[demo] %s\n' "$*" >&2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! timeout 10 lxc query "/1.0/images/aliases/$IMAGE" >/dev/null 2>&1; then
  log "LXD or image $IMAGE missing: running testbed.sh"
  "$here/testbed.sh"
fi

for name in "${NAMES[@]}"; do
  read -r -a want <<<"${SERVICES[$name]}"
  if ! inst=$(lxc query "/1.0/instances/$name" 2>/dev/null); then
    log "launching $name"
    args=()
    for kv in "${want[@]}"; do args+=(--config "$kv"); done
    lxc launch "$IMAGE" "$name" --quiet "${args[@]}"
    continue
  fi

  # Existing instance: set what differs, drop user.lexa.* keys that are not wanted.
  config=$(jq -c '.config' <<<"$inst")
  to_set=()
  for kv in "${want[@]}"; do
    if [[ $(jq -r --arg k "${kv%%=*}" '.[$k] // empty' <<<"$config") != "${kv#*=}" ]]; then
      to_set+=("$kv")
    fi
  done
  wanted_keys=$(printf '%s\n' "${want[@]%%=*}" | jq -R . | jq -sc .)
  mapfile -t to_unset < <(jq -r --argjson w "$wanted_keys" \
    'keys[] | select(startswith("user.lexa.")) | select(. as $k | $w | index($k) | not)' <<<"$config")
  if [[ ${#to_set[@]} -gt 0 ]]; then
    log "$name: setting ${to_set[*]}"
    lxc config set "$name" "${to_set[@]}"
  fi
  for key in "${to_unset[@]}"; do
    log "$name: unsetting $key"
    lxc config unset "$name" "$key"
  done
  if [[ $(jq -r '.status' <<<"$inst") != Running ]]; then
    log "starting $name"
    lxc start "$name"
  fi
done

# Addresses arrive after start (IPv4 ~0.2 s, SLAAC IPv6 ~1-2 s); wait up to 10 s for both.
for _ in $(seq 1 50); do
  missing=0
  for name in "${NAMES[@]}"; do
    lxc query "/1.0/instances/$name/state" | jq -e '
      [.network.eth0.addresses[]? | select(.scope == "global") | .family] as $f
      | ($f | index("inet")) and ($f | index("inet6"))' >/dev/null || missing=1
  done
  [[ $missing -eq 0 ]] && break
  sleep 0.2
done

lxc list --columns ns46 "^($(IFS='|'; echo "${NAMES[*]}"))\$"
for name in "${NAMES[@]}"; do
  printf '%-6s %s\n' "$name" "${SERVICES[$name]}"
done
