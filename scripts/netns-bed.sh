# Sourced (bash) by scripts/cluster-bed.sh and scripts/fault-bed.sh: the pieces of an LXD daemon that lives in its
# own network namespace, reached from the host through a bridge and a veth pair, with its own state directory.
# Needs `log` and `die` functions. Nothing here knows which bed it serves: each function takes what it acts on.

# bed_daemon_pid PIDFILE: the daemon's PID, or fails when it is not running. A SIGKILLed daemon is reparented to
# PID 1, which on some machines reaps late: `kill -0` still succeeds on the zombie, and a start would wait for a
# daemon that is gone. A zombie (state Z) counts as dead.
bed_daemon_pid() {
  local pid state
  [[ -s $1 ]] || return 1
  pid=$(cat "$1")
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]] && echo "$pid"
}

# bed_cwd_gone PID: true when the process's working directory was deleted. A daemon started from a checkout
# (a CI clone) that is later removed keeps the deleted directory as its own, and so do the helpers it spawns: LXD's
# receiving `rsync --server` then fails at once (getcwd(): No such file or directory, exit 3), and every
# `lxc move --target` between cluster members fails with "Rsync send failed ... code 12". Daemons start from /.
bed_cwd_gone() {
  [[ $(readlink "/proc/$1/cwd" 2>/dev/null) == *" (deleted)" ]]
}

# bed_bridge BRIDGE CIDR: the host bridge the namespaces hang on, with the host's address on it.
bed_bridge() {
  if ! ip link show "$1" >/dev/null 2>&1; then
    ip link add "$1" type bridge
    ip addr add "$2" dev "$1"
  fi
  ip link set "$1" up
}

# bed_namespace NS BRIDGE VETH ADDRESS: namespace NS, joined to BRIDGE by the veth pair VETH (host end) / eth0
# (namespace end), which holds ADDRESS/24.
bed_namespace() {
  local ns=$1 bridge=$2 veth=$3 address=$4
  ip netns list | grep -qw "$ns" || ip netns add "$ns"
  # A host end whose peer is not in the namespace (the namespace was re-created) is useless: make a new pair.
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then ip link del "$veth" 2>/dev/null || true; fi
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$bridge" up
  fi
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# `ip netns exec` gives the daemon a fresh /sys (so LXD sees its namespace's interfaces), which hides the cgroup
# mounts; bed_start_lxd mounts them again, exactly as on the host, inside that private mount namespace. Prints
# one line per mount: type, mount point, options.
bed_cgroup_mounts() {
  awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break; t = $(i + 1) }
       $5 ~ "^/sys/fs/cgroup/" && (t == "cgroup" || t == "cgroup2") { print t, $5, $NF }' /proc/self/mountinfo
}

# bed_start_lxd NS LXD_DIR PIDFILE LOGFILE OUTFILE: starts `lxd` detached inside NS (it outlives this script), its
# PID in PIDFILE, its log in LOGFILE and its output in OUTFILE. Does not wait for it.
bed_start_lxd() {
  local ns=$1 dir=$2 pidfile=$3 logfile=$4 outfile=$5 mounts
  mkdir -p "$dir"
  mounts=$(bed_cgroup_mounts | while read -r type point opts; do
    local o=${opts#rw,}
    [[ $type == cgroup2 ]] && o=""
    printf 'mkdir -p %q; mount -t %s %s %s %q;\n' "$point" "$type" "${o:+-o $(printf %q "$o")}" "$type" "$point"
  done)
  # fd 9 is the bed's lock: the daemon must not hold it. It runs from / (bed_cwd_gone says why).
  ip netns exec "$ns" env LXD_DIR="$dir" setsid sh -c "
    cd /; mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup; $mounts
    echo \$\$ > '$pidfile'
    exec lxd --group root --logfile '$logfile'" </dev/null >>"$outfile" 2>&1 9>&- &
  disown || true
}

# bed_trust_and_image TESTBED IMAGE_ALIAS LXC...: through the command LXC... (an `lxc` bound to the bed's daemon),
# trusts the test bed's client certificate and imports its busybox image as IMAGE_ALIAS, each only when missing (a
# fault test removes the certificate and adds it back; this also puts it back after an interrupted run).
bed_trust_and_image() {
  local testbed=$1 alias=$2 fp tarball
  shift 2
  fp=$(openssl x509 -in "$testbed/client.crt" -outform der | sha256sum | awk '{print $1}')
  if ! "$@" query /1.0/certificates | jq -e --arg fp "$fp" 'any(.[]; . == "/1.0/certificates/" + $fp)' >/dev/null; then
    "$@" config trust add "$testbed/client.crt" --name lexa-testbed
  fi
  if ! "$@" query "/1.0/images/aliases/$alias" >/dev/null 2>&1; then
    tarball=$(ls "$testbed"/image/"$alias"-v*.tar.gz 2>/dev/null | head -n1)
    [[ -n $tarball ]] || die "no busybox image in $testbed/image: run scripts/testbed.sh first"
    "$@" image import "$tarball" --alias "$alias" >/dev/null
  fi
}

# bed_kill_dnsmasq STATE: a daemon that was killed (not shut down) leaves its dnsmasq behind; ends those whose
# lease file is under STATE (this bed's only).
bed_kill_dnsmasq() {
  local p
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] && tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^dnsmasq .*--dhcp-leasefile=$1/" &&
      kill "${p#/proc/}" 2>/dev/null || true
  done
}
