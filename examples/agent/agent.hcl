# The lexa agent inside a container: `lexa agent --config /etc/lexa/agent.hcl`.
# test/peers/haproxy-agent.test.ts runs exactly this file in real containers (only the port is the test's own),
# with busybox httpd as the service, feeding examples/haproxy/haproxy.cfg's _https._tcp.service.lexa backend.
agent {
  server     = "10.99.0.1:18500"          # the server's agent endpoint: server.agent.bind (the bridge address)
  token_file = "/etc/lexa/agent.token"    # the server's optional shared secret (server.agent.token), if it sets one
  # The agent's own credential is the instance's user.lexa.agent.token, read from /dev/lxd/sock; the services it
  # may announce are the instance's user.lexa.agent.services (docs/security.md, "Agents").
  ca         = "/etc/lexa/agent-ca.crt"   # the server's certificate (or fingerprint = "sha256:AB:CD:...")

  service {
    name = "https"
    port = 443
    tags = ["app"]
    check {
      http     = "http://127.0.0.1:443/"  # 2xx passes
      interval = "1s"
      timeout  = "500ms"
      failures_before_critical = 1
      success_before_passing   = 1
    }
  }
}
