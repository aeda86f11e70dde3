#!/bin/sh
# Builds the independent DoQ test client (test/peers/doq-client/main.go) to
# ${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}/doq-client and prints its path.
#
# Idempotent: installs Go 1.23, quic-go and miekg/dns from Debian (quic-go and Go
# from bookworm-backports; about 80 MB) only when missing, and rebuilds only when
# the source is newer than the binary. Builds offline in GOPATH mode against the
# Debian packages' sources under /usr/share/gocode. Needs root for the install.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC="$ROOT/test/peers/doq-client/main.go"
OUT_DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
BIN="$OUT_DIR/doq-client"
GO=/usr/lib/go-1.23/bin/go
GOCODE=/usr/share/gocode
PACKAGES="golang-1.23-go golang-github-lucas-clemente-quic-go-dev golang-github-miekg-dns-dev"
APT="apt-get -o DPkg::Lock::Timeout=900"

log() { echo "doq-client.sh: $*" >&2; }

have_packages() {
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
	# quic-go must be the backports version (0.46+: import path github.com/quic-go/quic-go).
	[ -d "$GOCODE/src/github.com/quic-go/quic-go" ]
}

# shellcheck source=setup-lib.sh
. "$(dirname "$0")/setup-lib.sh"

install_packages() {
	ensure_backports || exit 1
	log "installing $PACKAGES"
	$APT update -q >&2
	DEBIAN_FRONTEND=noninteractive $APT install -y -q --no-install-recommends \
		-t bookworm-backports $PACKAGES >&2
}

have_packages || install_packages

if [ ! -x "$BIN" ] || [ "$SRC" -nt "$BIN" ]; then
	mkdir -p "$OUT_DIR"
	log "building $BIN"
	# GOPATH mode: the Debian -dev packages install sources under $GOCODE/src.
	# GOCACHE under the test bed keeps repeat builds fast and out of $HOME.
	GO111MODULE=off GOPATH="$GOCODE" GOFLAGS= GOTOOLCHAIN=local GOCACHE="$OUT_DIR/go-cache" \
		"$GO" build -o "$BIN.tmp" "$SRC"
	mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
