import { createHash } from 'node:crypto';
import type { TransportDescriptor } from '../descriptor.js';
import { readClientCa } from '../tls-servers.js';
import { REST_LIMITS, startRest } from './index.js';

/** The REST API over HTTPS (server.tls), optionally asking for client certificates (server.tls.client_ca). */
export const restTransport: TransportDescriptor = {
  name: 'rest',
  configPath: 'server.tls',
  enabled: (c) => c.rest.enabled,
  binds: (c) => c.rest.binds,
  // Its generated certificate is made for "localhost": the API has no hostname setting of its own.
  tls: { settings: (c) => ({ tls: c.rest.tls, hostname: 'localhost' }), swapsLive: true },
  limits: (c) => c.rest.limits,
  prepare(c, ctx) {
    // Mutual TLS is fixed when a server opens (requestCert): a new or changed client CA reopens the REST listeners,
    // which also ends connections made without a client certificate. Read here, so a bad file throws before a
    // reload has changed anything.
    const clientCa = c.rest.clientCa === null ? null : readClientCa(c.rest.clientCa);
    const limits = { ...REST_LIMITS, ...c.rest.limits };
    return {
      ...(clientCa === null ? {} : { variant: `client-ca:${createHash('sha256').update(clientCa.pem).digest('hex')}` }),
      open: async (bind) => ({ listeners: await startRest({ binds: [bind], tls: ctx.material('rest'), log: ctx.log('rest'), limits, app: ctx.app, clientCa }) }),
    };
  },
};
