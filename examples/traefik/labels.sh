#!/bin/sh
# Declares a web service and its Traefik routing on an LXD (or Incus) profile: every instance using the profile
# serves http on port 80, Traefik routes app.example.com on its "web" entry point to all of them and checks
# each with GET / every 10 s. Use with: lxc launch <image> web-1 --profile default --profile web
#
#   PROFILE   profile name (default: web)
#   LXC       the client: lxc or incus (default: lxc)
set -eu
exec </dev/null # `incus profile create` reads YAML from a stdin that is not a terminal
PROFILE=${PROFILE:-web}
LXC=${LXC:-lxc}

$LXC profile show "$PROFILE" >/dev/null 2>&1 || $LXC profile create "$PROFILE"
$LXC profile set "$PROFILE" \
  user.lexa.service.http.port=80 \
  user.traefik.http.routers.app.rule='Host(`app.example.com`)' \
  user.traefik.http.routers.app.entrypoints=web \
  user.traefik.http.routers.app.service=http \
  user.traefik.http.services.http.loadbalancer.healthcheck.path=/ \
  user.traefik.http.services.http.loadbalancer.healthcheck.interval=10s
