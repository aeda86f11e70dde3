# /etc/lexa/lexa.hcl for examples/systemd/lexa.service: DNS on port 53 (CAP_NET_BIND_SERVICE), LXD over HTTPS with
# the client certificate the unit passes as credentials. The REST API (with /metrics) stays on loopback.
server {
  lxd {
    suffix = "lexa"
    bind {
      host = "127.0.0.1"
      port = 8443
    }
    certificate = "/run/credentials/lexa.service/lxd-client.crt"
    key         = "/run/credentials/lexa.service/lxd-client.key"
  }

  tls {
    bind {
      host = "127.0.0.1"
      port = 18443
    }
  }

  dns {
    bind {
      host = "127.0.0.1"
      port = 53
    }
  }

  log {
    out   = "stderr"
    level = "info"
  }
}
