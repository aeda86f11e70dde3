"""Debian's python3-consul (python-consul 0.7.1) against lexa's Consul API, for test/peers/consul-clients.test.ts.

  read  <port> <service>          prints {"services", "service", "passing", "index"} as the library returns them
  block <port> <service> <index>  one blocking health query (wait 60s); prints {"index", "passing"} when it returns
"""
import json
import sys
import warnings

import consul

warnings.simplefilter("ignore")  # lexa's REST certificate is self-signed here: verify=False warns on every call

mode, port, service = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = consul.Consul(host="127.0.0.1", port=port, scheme="https", verify=False, dc="lexa")
if mode == "read":
    _, services = c.catalog.services()
    _, nodes = c.catalog.service(service)
    index, passing = c.health.service(service, passing=True)
    print(json.dumps({"services": services, "service": nodes, "passing": passing, "index": index, "leader": c.status.leader()}))
elif mode == "block":
    index, passing = c.health.service(service, index=sys.argv[4], wait="60s", passing=True)
    print(json.dumps({"index": index, "passing": passing}))
