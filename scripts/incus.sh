#!/usr/bin/env bash
# Prepare a real Incus beside the test bed's LXD, so the integration tests can run against Incus too
# (LEXA_TEST_DAEMON=incus; see test/helpers/lxd-cli.ts). Debian 12, root. Run scripts/testbed.sh first: this
# imports the busybox image tarball it builds and trusts the same client certificate.
#
# Idempotent, like testbed.sh: each step checks first and acts only when something is missing.
#   1. incus-base + incus-client 6.0.x from bookworm-backports (adds a backports sources entry if none)
#   2. the daemon, `incusd --group root`, detached; its own socket /var/lib/incus/unix.socket
#   3. initialisation by preseed: https on 127.0.0.1:8444, bridge incusbr0 (10.98.0.1/24, fd42:98::1/64, no NAT),
#      dir pool "default", default profile (its own addresses and port: LXD keeps 8443, lxdbr0, 10.99.0.0/24)
#   4. the image alias lexa-busybox, from the test bed's tarball
#   5. the test bed's client certificate trusted; a copy of Incus's server certificate
set -euo pipefail
exec </dev/null

DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
INCUS_DIR=/var/lib/incus
INCUS_LOG=/var/log/incus/incusd.log
HTTPS_ADDRESS=127.0.0.1:8444
BRIDGE=incusbr0
BRIDGE_V4=10.98.0.1/24
BRIDGE_V6=fd42:98::1/64
IMAGE_ALIAS=lexa-busybox
PACKAGES=(incus-base incus-client)
# Debian installs the daemon outside PATH.
INCUSD=/usr/libexec/incus/incusd

log() { printf '[incus] %s\n' "$*" >&2; }
die() { printf '[incus] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=setup-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup-lib.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -s $DIR/client.crt ]] || die "run scripts/testbed.sh first (no $DIR/client.crt)"
exec 9>"$DIR/.incus.lock"
flock 9

install_packages() {
  local p missing=0
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing=1
  done
  [[ $missing -eq 0 ]] && return 0
  ensure_backports || die "cannot add bookworm-backports"
  log "installing ${PACKAGES[*]} from bookworm-backports"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -q >&2
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends -t bookworm-backports "${PACKAGES[@]}" >&2
}

incus_answers() { timeout 10 incus query /1.0 >/dev/null 2>&1; }

# PIDs of the daemon itself: "incusd" with options only. Container monitors ("[lxc monitor] ...") and helpers
# ("incusd forkstart ...") have the same process name, so `pgrep -x incusd` alone would find them too.
incusd_pids() { pgrep -a -x incusd 2>/dev/null | awk '$2 ~ /(^|\/)incusd$/ && (NF == 2 || $3 ~ /^-/) {print $1}' || true; }

start_incus() {
  if incus_answers; then return 0; fi
  if [[ -z $(incusd_pids) ]]; then
    log "starting incusd"
    [[ -x $INCUSD ]] || die "$INCUSD not found (package incus-base)"
    mkdir -p "$(dirname "$INCUS_LOG")"
    # From /: a daemon keeps the directory it started in (see scripts/netns-bed.sh, bed_cwd_gone).
    (cd / && exec setsid "$INCUSD" --group root --logfile "$INCUS_LOG" </dev/null >/dev/null 2>&1 9>&-) &
    disown || true
  else
    log "incusd runs but does not answer yet; waiting"
  fi
  if ! incus admin waitready --timeout 60; then
    tail -n 30 "$INCUS_LOG" >&2 || true
    die "incusd did not become ready (log: $INCUS_LOG)"
  fi
  incus_answers || die "incusd is ready but 'incus query /1.0' fails"
}

incus_initialised() {
  [[ $(incus config get core.https_address) == "$HTTPS_ADDRESS" ]] || return 1
  incus storage show default >/dev/null 2>&1 || return 1
  incus query "/1.0/networks/$BRIDGE" 2>/dev/null | jq -e --arg v4 "$BRIDGE_V4" --arg v6 "$BRIDGE_V6" \
    '.managed and .config["ipv4.address"] == $v4 and .config["ipv6.address"] == $v6' >/dev/null || return 1
  incus query /1.0/profiles/default | jq -e --arg br "$BRIDGE" \
    '.devices.root.pool == "default" and .devices.eth0.network == $br' >/dev/null || return 1
}

init_incus() {
  if incus_initialised; then return 0; fi
  log "initialising Incus (preseed)"
  incus admin init --preseed < <(preseed_yaml)
  incus_initialised || die "Incus still not initialised as expected after preseed"
}

ensure_image() {
  local tarball fp current
  # The newest recipe testbed.sh built (it keeps only one).
  tarball=$(ls -t "$DIR/image/$IMAGE_ALIAS"-v*.tar.gz 2>/dev/null | head -n1)
  [[ -n $tarball ]] || die "no image tarball in $DIR/image (run scripts/testbed.sh)"
  fp=$(sha256sum "$tarball" | awk '{print $1}')
  current=$(incus query "/1.0/images/aliases/$IMAGE_ALIAS" 2>/dev/null | jq -r '.target // empty' || true)
  [[ $current == "$fp" ]] && return 0
  [[ -n $current ]] && incus image alias delete "$IMAGE_ALIAS"
  log "importing $tarball as $IMAGE_ALIAS"
  if incus image info "$fp" >/dev/null 2>&1; then incus image alias create "$IMAGE_ALIAS" "$fp"
  else incus image import "$tarball" --alias "$IMAGE_ALIAS" >/dev/null; fi
  if [[ -n $current && $current != "$fp" ]]; then incus image delete "$current" 2>/dev/null || true; fi
}

ensure_trust() {
  local fp
  fp=$(openssl x509 -in "$DIR/client.crt" -outform der | sha256sum | awk '{print $1}')
  if ! incus query /1.0/certificates | jq -e --arg fp "$fp" 'any(.[]; . == "/1.0/certificates/" + $fp)' >/dev/null; then
    log "trusting client certificate ${fp:0:12}"
    incus config trust add-certificate "$DIR/client.crt" --name lexa-testbed
  fi
  if ! cmp -s "$INCUS_DIR/server.crt" "$DIR/incus-server.crt"; then
    install -m 0644 "$INCUS_DIR/server.crt" "$DIR/incus-server.crt"
  fi
}

install_packages
start_incus
init_incus
ensure_image
ensure_trust

log "ready: Incus $(incus query /1.0 | jq -r '.environment.server_version') on $INCUS_DIR/unix.socket, https $HTTPS_ADDRESS, $BRIDGE ($BRIDGE_V4, $BRIDGE_V6)"
