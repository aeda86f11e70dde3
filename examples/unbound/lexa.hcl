# lexa for examples/unbound: plain DNS on 18053 (forward.conf, stub.conf) and DNS over TLS on 18853
# (forward-tls.conf) with a certificate for lexa.example.com, e.g. made with
#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=lexa.example.com \
#     -addext subjectAltName=DNS:lexa.example.com -keyout /etc/lexa/lexa-dot.key -out /etc/lexa/lexa-dot.crt
# Reverse zones are derived from LXD's managed networks (10.99.0.1/24 → 0.99.10.in-addr.arpa).
server {
  lxd {
    suffix = "lexa"
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 18053
    }
    dot {
      bind {
        host = "127.0.0.1"
        port = 18853
      }
      hostname    = "lexa.example.com"
      certificate = "/etc/lexa/lexa-dot.crt"
      key         = "/etc/lexa/lexa-dot.key"
    }
  }
}
