# Sourced (POSIX sh) by the test-bed scripts. ensure_backports adds a bookworm-backports entry to apt's sources when there is none, on
# the mirror the system's own sources already use (never another host). Needs a `log` function.
ensure_backports() {
	# Only the files apt reads (not e.g. *.disabled).
	_sources=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	# shellcheck disable=SC2086
	grep -qs '^[^#]*bookworm-backports' $_sources && return 0
	# shellcheck disable=SC2086
	_mirror=$(grep -hsv '^[[:space:]]*#' $_sources | grep -o 'https\?://[^ ]*/debian\b' | grep -v security | head -n1)
	if [ -z "$_mirror" ]; then
		echo "no Debian mirror in apt's sources to add bookworm-backports from; add a bookworm-backports entry by hand" >&2
		return 1
	fi
	log "adding $_mirror bookworm-backports to apt sources"
	echo "deb $_mirror bookworm-backports main" >/etc/apt/sources.list.d/backports.list
}

# preseed_yaml [SERVER_NAME]: the `lxd init --preseed` / `incus admin init --preseed` document every test bed uses:
# the API on $HTTPS_ADDRESS, a bridge $BRIDGE with fixed $BRIDGE_V4/$BRIDGE_V6 and no NAT, a `dir` pool, and the
# default profile with a root disk and eth0 on the bridge. With SERVER_NAME, it also bootstraps a cluster: its
# first member, SERVER_NAME, with cluster traffic on $HTTPS_ADDRESS too.
preseed_yaml() {
	if [ -n "${1:-}" ]; then
		cat <<EOF2
cluster:
  server_name: $1
  enabled: true
EOF2
	fi
	cat <<EOF2
config:
  core.https_address: "$HTTPS_ADDRESS"
EOF2
	[ -z "${1:-}" ] || printf '  cluster.https_address: "%s"\n' "$HTTPS_ADDRESS"
	cat <<EOF2
networks:
- name: $BRIDGE
  type: bridge
  config:
    ipv4.address: $BRIDGE_V4
    ipv4.nat: "false"
    ipv6.address: $BRIDGE_V6
    ipv6.nat: "false"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      type: disk
      path: /
      pool: default
    eth0:
      type: nic
      name: eth0
      network: $BRIDGE
EOF2
}
