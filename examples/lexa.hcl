# lexa with every server on loopback: what scripts/demo.sh runs, and a starting point for your own.
# Certificates are generated (self-signed ECDSA P-256, fingerprints logged) since none are configured.
server {
  lxd {
    suffix = "lexa"
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
      port = 18053
    }
    ttl = 0

    dot {
      bind {
        host = "127.0.0.1"
        port = 18853
      }
      hostname = "localhost"
    }

    doh {
      bind {
        host = "127.0.0.1"
        port = 18855
      }
      hostname = "localhost"
    }

    quic {
      bind {
        host = "127.0.0.1"
        port = 18854
      }
      hostname = "localhost"
    }
  }

  log {
    out   = "stdout"
    level = "info"
  }
}
