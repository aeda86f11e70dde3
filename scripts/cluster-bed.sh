#!/usr/bin/env bash
# A real 2-member LXD 5.0 cluster on one machine, for lexa's cluster tests (test/cluster). Run as root, after
# scripts/testbed.sh (it reuses its packages, busybox image and client certificate).
#
#   bash scripts/cluster-bed.sh            form the cluster, or repair it (idempotent; also after a reboot)
#   bash scripts/cluster-bed.sh start N    start member N's daemon again (after a test killed it)
#   bash scripts/cluster-bed.sh down       delete its instances, stop both daemons, remove everything
#
# Layout (nothing shared with the standalone test LXD but the packages):
#   host bridge lexacl0 10.77.0.1/24; member N lives in network namespace lexa-cmN, reached through a veth pair
#   at 10.77.0.1N; its daemon has LXD_DIR=/var/lib/lexa-cluster/mN and serves HTTPS (and cluster traffic) on
#   10.77.0.1N:8443, member name lexa-cN. Instances use the cluster network lexacbr0 (10.78.0.1/24,
#   fd42:78::1/64), a bridge each member creates inside its own namespace, each with its own dnsmasq.
# Member 1 bootstraps the cluster and holds the only database voter (database-leader); member 2 is the
# database-standby, the one a test may kill without stopping the cluster's database.
set -euo pipefail
exec </dev/null

STATE=${LEXA_CLUSTER_DIR:-/var/lib/lexa-cluster}
TESTBED=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
HOST_BRIDGE=lexacl0
HOST_V4=10.77.0.1/24
NET=lexacbr0
NET_V4=10.78.0.1/24
NET_V6=fd42:78::1/64
MEMBERS=(1 2)
IMAGE_ALIAS=lexa-busybox

log() { printf '[cluster-bed] %s\n' "$*" >&2; }
die() { printf '[cluster-bed] ERROR: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
# shellcheck source=setup-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup-lib.sh"
# shellcheck source=netns-bed.sh
. "$(dirname "${BASH_SOURCE[0]}")/netns-bed.sh"

ns() { echo "lexa-cm$1"; }
addr() { echo "10.77.0.1$1"; }
name() { echo "lexa-c$1"; }
dir() { echo "$STATE/m$1"; }
mlxc() { local n=$1; shift; LXD_DIR=$(dir "$n") timeout 60 lxc "$@"; }
answers() { [[ -S $(dir "$1")/unix.socket ]] && LXD_DIR=$(dir "$1") timeout 10 lxc query /1.0 >/dev/null 2>&1; }
daemon_pid() { bed_daemon_pid "$(dir "$1")/daemon.pid"; }

mkdir -p "$STATE"
exec 9>"$STATE/.lock"
flock 9

# The host side: one bridge, and per member a namespace joined to it by a veth pair.
ensure_network() {
  bed_bridge "$HOST_BRIDGE" "$HOST_V4"
  local n
  for n in "${MEMBERS[@]}"; do bed_namespace "$(ns "$n")" "$HOST_BRIDGE" "lexacl0-m$n" "$(addr "$n")"; done
}

start_member() {
  local n=$1 pid
  # A test interrupted while it had the member frozen (SIGSTOP, test/cluster/frozen.test.ts) leaves it stopped.
  pid=$(daemon_pid "$n" || true)
  if [[ -n $pid ]]; then kill -CONT "$pid"; fi
  # A member started from a directory since deleted cannot receive a moved instance (netns-bed.sh, bed_cwd_gone):
  # restarted, as test/cluster/failure.test.ts restarts one (its instances keep running).
  if [[ -n $pid ]] && bed_cwd_gone "$pid"; then
    log "member $n runs in a deleted directory; restarting it"
    kill -KILL "$pid"
    while [[ -n $(daemon_pid "$n" || true) ]]; do sleep 0.2; done
  fi
  answers "$n" && return 0
  if [[ -z $(daemon_pid "$n" || true) ]]; then
    log "starting member $n ($(name "$n"))"
    bed_start_lxd "$(ns "$n")" "$(dir "$n")" "$(dir "$n")/daemon.pid" "$(dir "$n")/lxd.log" /dev/null
  fi
  LXD_DIR=$(dir "$n") lxd waitready --timeout 60 || { tail -n 20 "$(dir "$n")/lxd.log" >&2; die "member $n did not start"; }
}

clustered() {
  local members
  members=$(mlxc 1 query /1.0/cluster/members?recursion=1 2>/dev/null) || return 1
  jq -e 'length == 2 and all(.[]; .status == "Online")' <<<"$members" >/dev/null
}

bootstrap() {
  log "bootstrapping member 1"
  HTTPS_ADDRESS=$(addr 1):8443 BRIDGE=$NET BRIDGE_V4=$NET_V4 BRIDGE_V6=$NET_V6 preseed_yaml "$(name 1)" |
    LXD_DIR=$(dir 1) lxd init --preseed
}

join() {
  log "joining member 2"
  local token
  mlxc 1 cluster list -f csv 2>/dev/null | grep -q "^$(name 2)," && mlxc 1 cluster remove --force --yes "$(name 2)" >/dev/null
  token=$(mlxc 1 cluster add "$(name 2)" --quiet)
  LXD_DIR=$(dir 2) lxd init --preseed <<EOF
cluster:
  enabled: true
  server_name: $(name 2)
  server_address: "$(addr 2):8443"
  cluster_address: "$(addr 1):8443"
  cluster_token: "$token"
  member_config: []
EOF
}

# The client certificate (trusted after the join: before it, member 2 answered 403) and the image.
ensure_trust_and_image() {
  bed_trust_and_image "$TESTBED" "$IMAGE_ALIAS" mlxc 1
  # Members share one cluster certificate: pin it (the tests read it from here).
  install -m 0644 "$(dir 1)/cluster.crt" "$STATE/cluster.crt"
}

down() {
  local n
  for n in "${MEMBERS[@]}"; do
    if answers "$n"; then
      mlxc "$n" query "/1.0/instances?recursion=1" 2>/dev/null |
        jq -r --arg m "$(name "$n")" '.[] | select(.location == $m) | .name' |
        while read -r i; do mlxc "$n" delete --force "$i" || true; done
    fi
  done
  for n in 2 1; do
    local pid; pid=$(daemon_pid "$n" || true)
    if [[ -n $pid ]]; then
      LXD_DIR=$(dir "$n") timeout 30 lxd shutdown 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    fi
    ip netns del "$(ns "$n")" 2>/dev/null || true
  done
  ip link del "$HOST_BRIDGE" 2>/dev/null || true
  bed_kill_dnsmasq "$STATE"
  rm -rf "$STATE"
  log "removed"
}

up() {
  local t0=$SECONDS
  ensure_network
  start_member 1
  if [[ $(mlxc 1 query /1.0 | jq -r '.environment.server_clustered') != true ]]; then bootstrap; fi
  start_member 2
  if [[ $(mlxc 2 query /1.0 | jq -r '.environment.server_clustered') != true ]]; then join; fi
  local i
  for i in $(seq 1 60); do clustered && break; sleep 1; done
  clustered || die "the cluster did not become 2 members Online: $(mlxc 1 cluster list 2>&1)"
  ensure_trust_and_image
  log "ready in $((SECONDS - t0)) s: $(name 1) https://$(addr 1):8443, $(name 2) https://$(addr 2):8443, certificate $STATE/cluster.crt"
}

case "${1:-up}" in
  up) up ;;
  start) ensure_network; start_member "${2:?member number}" ;;
  down) down ;;
  *) die "usage: $0 [up|start N|down]" ;;
esac
