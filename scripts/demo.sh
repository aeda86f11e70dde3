#!/usr/bin/env bash
# The README's first command: on a fresh Debian/Ubuntu machine (as root), install and start a real LXD with
# three demo containers that declare services, build lexa, and run it in the foreground on its defaults
# (local LXD socket; DNS on 127.0.0.1:18053; REST on https://127.0.0.1:18443). Ctrl-C stops lexa.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
[[ $(id -u) -eq 0 ]] || { echo "scripts/demo.sh: run as root (it installs and starts LXD)" >&2; exit 1; }

bash scripts/testbed.sh
bash scripts/demo-containers.sh
if ! command -v node >/dev/null || [[ $(node -p 'process.versions.node.split(".")[0]') -lt 20 ]]; then
  echo "scripts/demo.sh: Node.js 20 or newer is needed (apt-get install nodejs on Debian 13 / Ubuntu 24.04)" >&2
  exit 1
fi
# What the native addons build with (batched UDP; DoH's HTTP/2 sessions on the nghttp2 inside Node, whose headers
# Debian ships in libnghttp2-dev). Without them lexa serves the same with dgram and node:http2, at more CPU.
if ! command -v gcc >/dev/null || [[ ! -f /usr/include/nghttp2/nghttp2.h ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev libnghttp2-dev
fi
[[ -d node_modules ]] || npm ci --no-audit --no-fund
# The native addons (npm ci builds them; a node_modules from before one, or an edited source, gets them here).
for addon in udp_batch h2_session; do
  if [[ ! -f native/build/$addon.node || native/$addon.c -nt native/build/$addon.node ]]; then node scripts/build-native.mjs; break; fi
done
npm run build
cat <<'MSG'

lexa is starting. In another terminal try:
  curl -sk https://127.0.0.1:18443/containers/ | jq .
  dig @127.0.0.1 -p 18053 web-1.lexa A +short
  dig @127.0.0.1 -p 18053 _http._tcp.service.lexa SRV
  lxc stop web-2     # and watch it leave /containers/

MSG
if [[ $# -eq 0 ]]; then set -- --config examples/lexa.hcl; fi
exec node dist/cli.js server "$@"
