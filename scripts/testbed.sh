#!/usr/bin/env bash
# Prepare a real LXD for lexa's integration tests and demos (Debian 12, run as root).
#
# Idempotent: safe to run any number of times, and after a reboot where LXD's state is
# on disk but no daemon runs. Each step checks first and only acts when something is
# missing:
#   1. apt packages (lxd, lxd-client, iptables, dnsmasq, busybox-static, dig/kdig, haproxy, ...)
#   2. the LXD daemon (started detached, so it outlives this script)
#   3. LXD initialisation by preseed: https on 127.0.0.1:8443, bridge lxdbr0
#      (10.99.0.1/24, fd42:99::1/64, no NAT), dir pool "default", default profile
#   4. a ~1 MB busybox image, alias "lexa-busybox" (DHCPv4 + SLAAC, stops cleanly)
#   5. a client certificate trusted by LXD, and a copy of LXD's server certificate
#
# State dir: /var/lib/lexa-testbed, or $LEXA_TESTBED_DIR.
set -euo pipefail
exec </dev/null # lxc may read YAML from a non-terminal stdin; never let it wait on one (preseed uses a heredoc).

DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
LXD_DIR=${LXD_DIR:-/var/lib/lxd}
LXD_SOCKET="$LXD_DIR/unix.socket"
LXD_LOG=/var/log/lxd/lxd.log
HTTPS_ADDRESS=127.0.0.1:8443
BRIDGE=lxdbr0
BRIDGE_V4=10.99.0.1/24
BRIDGE_V6=fd42:99::1/64
IMAGE_ALIAS=lexa-busybox
# Bump when the image recipe below changes; the build is cached per version.
IMAGE_VERSION=3
PACKAGES=(lxd lxd-client iptables nftables dnsmasq-base busybox-static dnsutils knot-dnsutils
          haproxy socat curl jq openssl)

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=setup-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup-lib.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root"
mkdir -p "$DIR"
chmod 0755 "$DIR"

# One run at a time. fd 9 must not leak into the LXD daemon (it would hold the lock forever).
exec 9>"$DIR/.lock"
flock 9

# ---------------------------------------------------------------------------------------
# 1. Packages
# ---------------------------------------------------------------------------------------
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -q
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------------------
# 2. Daemon
# ---------------------------------------------------------------------------------------
lxd_answers() { timeout 10 lxc query /1.0 >/dev/null 2>&1; }

# PIDs of the daemon itself: "lxd" with options only. Container monitors ("[lxc monitor] ...")
# and helpers ("lxd forkstart ...") have the same process name, so `pkill -x lxd` would hit them. The cluster
# bed's two daemons (scripts/cluster-bed.sh, logging under /var/lib/lexa-cluster) are other LXDs, not this one.
lxd_daemon_pids() { pgrep -a -x lxd 2>/dev/null | awk '$2 ~ /(^|\/)lxd$/ && (NF == 2 || $3 ~ /^-/) && !/lexa-cluster/ && !/lexa-faultbed/ {print $1}' || true; }

start_lxd() {
  if lxd_answers; then return 0; fi
  if [[ -z $(lxd_daemon_pids) ]]; then
    log "starting LXD daemon"
    mkdir -p "$(dirname "$LXD_LOG")"
    # setsid + all fds closed/redirected: the daemon outlives this script and its session.
    # From /: a daemon keeps the directory it started in (see scripts/netns-bed.sh, bed_cwd_gone).
    (cd / && exec setsid lxd --group root --logfile "$LXD_LOG" </dev/null >/dev/null 2>&1 9>&-) &
    disown || true
  else
    log "LXD daemon process exists but does not answer yet; waiting"
  fi
  if ! lxd waitready --timeout 60; then
    tail -n 30 "$LXD_LOG" >&2 || true
    die "LXD did not become ready (log: $LXD_LOG)"
  fi
  lxd_answers || die "LXD is ready but 'lxc query /1.0' fails"
}

# ---------------------------------------------------------------------------------------
# 3. Initialisation
# ---------------------------------------------------------------------------------------
lxd_initialised() {
  [[ $(lxc config get core.https_address) == "$HTTPS_ADDRESS" ]] || return 1
  lxc storage show default >/dev/null 2>&1 || return 1
  local net
  net=$(lxc query "/1.0/networks/$BRIDGE" 2>/dev/null) || return 1
  jq -e --arg v4 "$BRIDGE_V4" --arg v6 "$BRIDGE_V6" \
    '.managed and .config["ipv4.address"] == $v4 and .config["ipv6.address"] == $v6' \
    <<<"$net" >/dev/null || return 1
  lxc query /1.0/profiles/default | jq -e --arg br "$BRIDGE" \
    '.devices.root.pool == "default" and .devices.eth0.network == $br' >/dev/null || return 1
}

init_lxd() {
  if lxd_initialised; then return 0; fi
  log "initialising LXD (preseed)"
  # Preseed applies on top of existing objects too, so a half-initialised LXD is completed.
  lxd init --preseed < <(preseed_yaml)
  lxd_initialised || die "LXD still not initialised as expected after preseed"
}

# ---------------------------------------------------------------------------------------
# 4. Image
# ---------------------------------------------------------------------------------------
# Builds the image tarball reproducibly (same busybox + same recipe => same bytes, so the same
# LXD fingerprint), caching it in $DIR. Prints the tarball path.
build_image() {
  local tarball="$DIR/image/$IMAGE_ALIAS-v$IMAGE_VERSION.tar.gz"
  if [[ -s $tarball ]]; then echo "$tarball"; return 0; fi
  log "building busybox image"
  umask 022
  # Drop builds of other recipe versions and leftovers of interrupted builds.
  rm -rf "$DIR/image/$IMAGE_ALIAS"-v*.tar.gz* "$DIR"/image-build.*
  local work
  work=$(mktemp -d "$DIR/image-build.XXXXXX")
  local root="$work/rootfs"
  local busybox=/bin/busybox
  # The image has no libc: busybox must be the static build (package busybox-static).
  if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked; install busybox-static"; fi
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,tmp,root,var}
  ln -s ../run "$root/var/run"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  install -m 0755 "$busybox" "$root/bin/busybox"
  local applet
  while read -r applet; do
    [[ -e $root/$applet || -L $root/$applet ]] && continue
    mkdir -p "$(dirname "$root/$applet")"
    ln -s /bin/busybox "$root/$applet"
  done < <("$busybox" --list-full)

  # busybox init: lo + eth0 up, DHCPv4 client (IPv6 comes from the bridge's router
  # advertisements via the kernel's SLAAC).
  # Stopping: "lxc stop" sends SIGPWR, which busybox init treats as halt: it runs the
  # ::shutdown entries, then SIGTERM to all, sleeps 1 s, SIGKILL to all, sleeps 1 s and calls
  # reboot(2) (~2.7 s per stop). To halt in a fraction of that, the ::shutdown entry calls
  # "poweroff -f" (reboot(2) in a container's PID namespace ends its init at once and LXD
  # sees a clean halt), except after an in-container "reboot", which keeps busybox's own
  # sequence so that LXD sees a reboot and starts the instance again.
  cat >"$root/etc/inittab" <<'EOF'
::sysinit:/bin/mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
::sysinit:/sbin/ip link set lo up
::sysinit:/sbin/ip link set eth0 up
::respawn:/sbin/udhcpc -f -S -i eth0 -s /etc/udhcpc.script
::shutdown:/etc/shutdown.sh
EOF
  cat >"$root/etc/shutdown.sh" <<'EOF'
#!/bin/sh
[ -e /run/rebooting ] && exit 0
kill -TERM -1 2>/dev/null
exec /bin/busybox poweroff -f
EOF
  chmod 0755 "$root/etc/shutdown.sh"
  rm -f "$root/sbin/reboot"
  cat >"$root/sbin/reboot" <<'EOF'
#!/bin/sh
: > /run/rebooting
exec /bin/busybox reboot "$@"
EOF
  chmod 0755 "$root/sbin/reboot"

  # udhcpc hook: IPv4 only. Never "ip addr flush" without -4: that also removes the SLAAC address.
  cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    prefix=${mask:-}
    if [ -z "$prefix" ]; then eval "$(ipcalc -p "$ip" "$subnet")"; prefix=$PREFIX; fi
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$prefix "; then
      ip -4 addr flush dev "$interface"
      ip -4 addr add "$ip/$prefix" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    fi
    for r in $router; do
      ip -4 route replace default via "$r" dev "$interface"
      break
    done
    {
      [ -n "$domain" ] && echo "search $domain"
      for d in $dns; do echo "nameserver $d"; done
    } > /etc/resolv.conf
    ;;
esac
exit 0
EOF
  chmod 0755 "$root/etc/udhcpc.script"

  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"

  cat >"$work/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: 1700000000
properties:
  description: lexa test image (busybox, DHCPv4 + SLAAC) v$IMAGE_VERSION
  os: busybox
  release: "$("$busybox" 2>&1 | head -n1 | awk '{print $2}')"
EOF

  mkdir -p "$DIR/image"
  # Reproducible archive: fixed order, times and owners; gzip without name/timestamp.
  tar -C "$work" --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
      -cf - metadata.yaml rootfs | gzip -n -9 >"$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  rm -rf "$work"
  echo "$tarball"
}

ensure_image() {
  local tarball fp current
  tarball=$(build_image)
  fp=$(sha256sum "$tarball" | awk '{print $1}')
  current=$(lxc query "/1.0/images/aliases/$IMAGE_ALIAS" 2>/dev/null | jq -r '.target // empty' || true)
  [[ $current == "$fp" ]] && return 0
  if [[ -z $current ]]; then
    log "importing image as $IMAGE_ALIAS"
  else
    # The recipe (IMAGE_VERSION) or the busybox binary changed: repoint the alias.
    log "image $IMAGE_ALIAS is ${current:0:12}, expected ${fp:0:12}: re-importing"
    lxc image alias delete "$IMAGE_ALIAS"
  fi
  if lxc image info "$fp" >/dev/null 2>&1; then
    lxc image alias create "$IMAGE_ALIAS" "$fp"
  else
    lxc image import "$tarball" --alias "$IMAGE_ALIAS" >/dev/null
  fi
  if [[ -n $current && $current != "$fp" ]]; then
    lxc image delete "$current" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------------------------------
# 5. Certificates
# ---------------------------------------------------------------------------------------
ensure_client_cert() {
  if [[ ! -s $DIR/client.crt || ! -s $DIR/client.key ]]; then
    log "creating client certificate"
    (umask 077; openssl ecparam -genkey -name prime256v1 -out "$DIR/client.key.tmp" 2>/dev/null)
    openssl req -x509 -new -SHA384 -nodes -key "$DIR/client.key.tmp" -days 36500 \
      -out "$DIR/client.crt.tmp" -subj /CN=lexa-testbed 2>/dev/null
    mv "$DIR/client.key.tmp" "$DIR/client.key"
    mv "$DIR/client.crt.tmp" "$DIR/client.crt"
  fi
  local fp
  fp=$(openssl x509 -in "$DIR/client.crt" -outform der | sha256sum | awk '{print $1}')
  if ! lxc query /1.0/certificates | jq -e --arg fp "$fp" 'any(.[]; . == "/1.0/certificates/" + $fp)' >/dev/null; then
    log "trusting client certificate ${fp:0:12}"
    lxc config trust add "$DIR/client.crt" --name lexa-testbed
  fi
  if ! cmp -s "$LXD_DIR/server.crt" "$DIR/lxd-server.crt"; then
    install -m 0644 "$LXD_DIR/server.crt" "$DIR/lxd-server.crt"
  fi
}

install_packages
start_lxd
init_lxd
ensure_image
ensure_client_cert

cat <<EOF
lexa testbed ready
  LXD version     : $(lxc query /1.0 | jq -r '.environment.server_version')
  unix socket     : $LXD_SOCKET
  https address   : $(lxc config get core.https_address)
  bridge          : $BRIDGE ($BRIDGE_V4, $BRIDGE_V6)
  image alias     : $IMAGE_ALIAS ($(lxc query "/1.0/images/aliases/$IMAGE_ALIAS" | jq -r '.target[0:12]'))
  client cert/key : $DIR/client.crt $DIR/client.key
  LXD server cert : $DIR/lxd-server.crt
EOF
