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

flxc() { LXD_DIR=$LXD_DIR_FB timeout 60 lxc "$@"; }
answers() { [[ -S $LXD_DIR_FB/unix.socket ]] && LXD_DIR=$LXD_DIR_FB timeout 10 lxc query /1.0 >/dev/null 2>&1; }
# A SIGKILLed daemon is reparented to PID 1, which on some machines reaps late: `kill -0` still succeeds on the
# zombie, and the start would wait for a daemon that is gone. A zombie (state Z) counts as dead.
daemon_pid() {
  local f=$STATE/daemon.pid pid state
  [[ -s $f ]] || return 1
  pid=$(cat "$f")
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]] && echo "$pid"
}

mkdir -p "$LXD_DIR_FB"
exec 9>"$STATE/.lock"
flock 9

ensure_network() {
  if ! ip link show "$HOST_BRIDGE" >/dev/null 2>&1; then
    ip link add "$HOST_BRIDGE" type bridge
    ip addr add "$HOST_V4" dev "$HOST_BRIDGE"
  fi
  ip link set "$HOST_BRIDGE" up
  ip netns list | grep -qw "$NS" || ip netns add "$NS"
  # A host end whose peer is not in the namespace (the namespace was re-created) is useless: make a new pair.
  if ! ip -n "$NS" link show eth0 >/dev/null 2>&1; then ip link del "$HOST_BRIDGE-d" 2>/dev/null || true; fi
  if ! ip link show "$HOST_BRIDGE-d" >/dev/null 2>&1; then
    ip link add "$HOST_BRIDGE-d" type veth peer name eth0 netns "$NS"
    ip link set "$HOST_BRIDGE-d" master "$HOST_BRIDGE" up
  fi
  ip -n "$NS" link set lo up
  ip -n "$NS" addr replace "$ADDR/24" dev eth0
  ip -n "$NS" link set eth0 up
}

# As in scripts/cluster-bed.sh: `ip netns exec` gives the daemon a fresh /sys, which hides the cgroup mounts; they
# are mounted again, exactly as on the host, inside that private mount namespace.
cgroup_mounts() {
  awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break; t = $(i + 1) }
       $5 ~ "^/sys/fs/cgroup/" && (t == "cgroup" || t == "cgroup2") { print t, $5, $NF }' /proc/self/mountinfo
}

start_daemon() {
  answers && return 0
  local pid; pid=$(daemon_pid || true)
  # A stopped (SIGSTOP) daemon left by an interrupted test: wake it rather than start a second one.
  [[ -n $pid ]] && kill -CONT "$pid" 2>/dev/null || true
  if [[ -z $pid ]]; then
    log "starting the daemon"
    local mounts
    mounts=$(cgroup_mounts | while read -r type point opts; do
      local o=${opts#rw,}
      [[ $type == cgroup2 ]] && o=""
      printf 'mkdir -p %q; mount -t %s %s %s %q;\n' "$point" "$type" "${o:+-o $(printf %q "$o")}" "$type" "$point"
    done)
    ip netns exec "$NS" env LXD_DIR="$LXD_DIR_FB" setsid sh -c "
      mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup; $mounts
      echo \$\$ > '$STATE/daemon.pid'
      exec lxd --group root --logfile '$STATE/lxd.log'" </dev/null >>"$STATE/lxd.out" 2>&1 9>&- &
    disown || true
  fi
  LXD_DIR=$LXD_DIR_FB lxd waitready --timeout "$WAITREADY_S" || { tail -n 20 "$STATE/lxd.log" >&2; die "the daemon did not start"; }
}

initialise() {
  log "initialising"
  LXD_DIR=$LXD_DIR_FB lxd init --preseed <<EOF
config:
  core.https_address: "$ADDR:8443"
networks:
- name: $NET
  type: bridge
  config:
    ipv4.address: $NET_V4
    ipv4.nat: "false"
    ipv6.address: $NET_V6
    ipv6.nat: "false"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {type: disk, path: /, pool: default}
    eth0: {type: nic, name: eth0, network: $NET}
EOF
}

# The client certificate (a test removes it and adds it back; this puts it back after an interrupted run) and the
# image; the server certificate copied where the tests pin it.
ensure_trust_and_image() {
  local fp tarball
  fp=$(openssl x509 -in "$TESTBED/client.crt" -outform der | sha256sum | awk '{print $1}')
  if ! flxc query /1.0/certificates | jq -e --arg fp "$fp" 'any(.[]; . == "/1.0/certificates/" + $fp)' >/dev/null; then
    flxc config trust add "$TESTBED/client.crt" --name lexa-testbed
  fi
  if ! flxc query "/1.0/images/aliases/$IMAGE_ALIAS" >/dev/null 2>&1; then
    tarball=$(ls "$TESTBED"/image/"$IMAGE_ALIAS"-v*.tar.gz 2>/dev/null | head -n1)
    [[ -n $tarball ]] || die "no busybox image in $TESTBED/image: run scripts/testbed.sh first"
    flxc image import "$tarball" --alias "$IMAGE_ALIAS" >/dev/null
  fi
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
  # A daemon that was killed (not shut down) leaves its dnsmasq behind: end those of this bed only.
  local p
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] && tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^dnsmasq .*--dhcp-leasefile=$STATE/" &&
      kill "${p#/proc/}" 2>/dev/null || true
  done
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
