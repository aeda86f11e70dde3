# lexa as the primary of examples/knot/knot.conf: transfers to 127.0.0.1 only, signed with the same TSIG key,
# NOTIFY to knot on every change. The reverse zone 0.99.10.in-addr.arpa comes from LXD's bridge (10.99.0.1/24).
server {
  lxd {
    suffix = "lexa"
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 18053
    }
    transfer {
      allow  = ["127.0.0.1"]
      notify = ["127.0.0.1:18153"]
      key {
        name      = "lexa-xfr"
        algorithm = "hmac-sha256"
        secret    = "bGV4YS1leGFtcGxlLXNlY3JldC1jaGFuZ2UtbWUtMDE="
      }
    }
  }
}
