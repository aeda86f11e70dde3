#!/usr/bin/env bash
# `npm run fuzz [-- options]`: a million bad inputs through every decoder and entry point (test/fuzz/main.ts;
# docs/reliability.md, "Bad input"). Needs `npm run build` (the check-config share runs dist/cli.js) and, for the
# sockets target, the real LXD of scripts/testbed.sh and the Go DoQ client of scripts/doq-client.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f dist/cli.js ]] || npm run build
exec node --import ./test/loader/register.mjs test/fuzz/main.ts "$@"
