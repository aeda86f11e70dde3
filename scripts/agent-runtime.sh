#!/usr/bin/env bash
# The node runtime the agent tests bind-mount (read-only) into busybox containers: the host's node binary and
# exactly the libraries `ldd` lists for it, laid out as in the root file system (lib/…, lib64/ld-linux…), cached
# under /var/lib/lexa-testbed/node-runtime. Idempotent and quiet: rebuilt only when the node binary changes.
# (Bind-mounting rather than baking node into a second image: no 100 MB rootfs copy per container.)
set -euo pipefail
DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
OUT=$DIR/node-runtime
node=$(readlink -f "$(command -v node)")
stamp=$(sha256sum "$node" | awk '{print $1}')
[[ -f $OUT/.stamp && $(cat "$OUT/.stamp") == "$stamp" ]] && exit 0
tmp=$(mktemp -d "$DIR/node-runtime.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
install -D -m 0755 "$node" "$tmp/bin/node"
# Every library path ldd prints (the "=> /path" ones and the interpreter), copied to the same path under $tmp.
while read -r lib; do
  real=$(readlink -f "$lib")
  # Canonical merged-/usr paths (/usr/lib/… on Debian 12) become the /lib/… the binary asks for.
  target=${lib#/usr}
  install -D -m 0755 "$real" "$tmp$target"
done < <(ldd "$node" | grep -oE '(=> )?/[^ ]+' | sed 's/^=> //' | sort -u)
echo "$stamp" >"$tmp/.stamp"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
echo "[agent-runtime] node $("$node" --version) and $(find "$OUT" -name '*.so*' | wc -l) libraries in $OUT" >&2
