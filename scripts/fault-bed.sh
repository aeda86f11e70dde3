#!/usr/bin/env bash
# A standalone (non-clustered) LXD 5.0 daemon that lexa's fault tests (test/reliability) may stop, kill, freeze
# (SIGSTOP) and whose trust store they may change, so nobody else's tests feel it. Run as root, after
# scripts/testbed.sh (it reuses its packages, busybox image and client certificate).
#
#   bash scripts/fault-bed.sh            set it up, or repair it (idempotent; also after a reboot)
#   bash scripts/fault-bed.sh start      start its daemon again (after a test killed it); waits until it answers
#   bash scripts/fault-bed.sh down       delete its instances, stop the daemon, remove everything
#
# Layout (nothing shared with the test bed's or the cluster bed's daemons but the packages), the cluster bed's
# pattern with one member:
#   host bridge lexafb0 10.76.0.1/24; the daemon lives in network namespace lexa-fb, reached through a veth pair
#   at 10.76.0.11; LXD_DIR=/var/lib/lexa-faultbed/lxd, HTTPS on 10.76.0.11:8443. Instances use the bridge
#   lexafbbr0 (10.75.0.1/24, fd42:75::1/64) inside the namespace, with its own dnsmasq.
set -euo pipefail
exec </dev/null

STATE=${LEXA_FAULTBED_DIR:-/var/lib/lexa-faultbed}
TESTBED=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
LXD_DIR_FB=$STATE/lxd
NS=lexa-fb
HOST_BRIDGE=lexafb0
HOST_V4=10.76.0.1/24
ADDR=10.76.0.11
NET=lexafbbr0
NET_V4=10.75.0.1/24
NET_V6=fd42:75::1/64
IMAGE_ALIAS=lexa-busybox
# Starting takes 2–5 s on an idle machine; the shared CI machine can be far slower.
WAITREADY_S=90

log() { printf '[fault-bed] %s\n' "$*" >&2; }
die() { printf '[fault-bed] ERROR: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
# shellcheck source=setup-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup-lib.sh"
# shellcheck source=netns-bed.sh
. "$(dirname "${BASH_SOURCE[0]}")/netns-bed.sh"

flxc() { LXD_DIR=$LXD_DIR_FB timeout 60 lxc "$@"; }
answers() { [[ -S $LXD_DIR_FB/unix.socket ]] && LXD_DIR=$LXD_DIR_FB timeout 10 lxc query /1.0 >/dev/null 2>&1; }
daemon_pid() { bed_daemon_pid "$STATE/daemon.pid"; }

mkdir -p "$LXD_DIR_FB"
exec 9>"$STATE/.lock"
flock 9

ensure_network() {
  bed_bridge "$HOST_BRIDGE" "$HOST_V4"
  bed_namespace "$NS" "$HOST_BRIDGE" "$HOST_BRIDGE-d" "$ADDR"
}

start_daemon() {
  answers && return 0
  local pid; pid=$(daemon_pid || true)
  # A stopped (SIGSTOP) daemon left by an interrupted test: wake it rather than start a second one.
  [[ -n $pid ]] && kill -CONT "$pid" 2>/dev/null || true
  if [[ -z $pid ]]; then
    log "starting the daemon"
    bed_start_lxd "$NS" "$LXD_DIR_FB" "$STATE/daemon.pid" "$STATE/lxd.log" "$STATE/lxd.out"
  fi
  LXD_DIR=$LXD_DIR_FB lxd waitready --timeout "$WAITREADY_S" || { tail -n 20 "$STATE/lxd.log" >&2; die "the daemon did not start"; }
}

initialise() {
  log "initialising"
  HTTPS_ADDRESS=$ADDR:8443 BRIDGE=$NET BRIDGE_V4=$NET_V4 BRIDGE_V6=$NET_V6 preseed_yaml | LXD_DIR=$LXD_DIR_FB lxd init --preseed
}

# The client certificate (a test removes it and adds it back; this puts it back after an interrupted run) and the
# image; the server certificate copied where the tests pin it.
ensure_trust_and_image() {
  bed_trust_and_image "$TESTBED" "$IMAGE_ALIAS" flxc
  install -m 0644 "$LXD_DIR_FB/server.crt" "$STATE/server.crt"
}

down() {
  local pid; pid=$(daemon_pid || true)
  [[ -n $pid ]] && kill -CONT "$pid" 2>/dev/null || true
  if answers; then
    flxc query "/1.0/instances" | jq -r '.[] | sub(".*/"; "")' | while read -r i; do flxc delete --force "$i" || true; done
  fi
  if [[ -n $pid ]]; then LXD_DIR=$LXD_DIR_FB timeout 30 lxd shutdown 2>/dev/null || kill -9 "$pid" 2>/dev/null || true; fi
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HOST_BRIDGE" 2>/dev/null || true
  bed_kill_dnsmasq "$STATE"
  rm -rf "$STATE"
  log "removed"
}

up() {
  local t0=$SECONDS
  ensure_network
  start_daemon
  if [[ $(flxc config get core.https_address) != "$ADDR:8443" ]]; then initialise; fi
  ensure_trust_and_image
  log "ready in $((SECONDS - t0)) s: https://$ADDR:8443, LXD_DIR=$LXD_DIR_FB, certificate $STATE/server.crt"
}

case "${1:-up}" in
  up) up ;;
  start) ensure_network; start_daemon ;;
  down) down ;;
  *) die "usage: $0 [up|start|down]" ;;
esac
