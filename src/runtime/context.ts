import { merge, type Observable } from 'rxjs';
import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { instrument, ListenerCounters, type Metrics } from '../metrics/index.js';
import type { RateLimitCounts } from '../servers/dns/index.js';
import type { TransportContext } from '../servers/descriptor.js';
import type { AgentIngest } from '../streams/agents/ingest.js';
import type { ViewStore } from '../streams/index.js';
import type { CertificateRegistry } from '../tls/registry.js';
import type { Answering } from './answering.js';

/**
 * What every transport opens with (servers/descriptor.ts): the one DNS handler, counted per listener; transfers;
 * certificates; the REST application's view of the state; the agents' ingest; the metrics. Whatever a reload may
 * change is read from `live()` when used, so running listeners follow it.
 */
export function transportContext(p: {
  readonly live: () => Config;
  readonly answering: Answering;
  readonly certificates: CertificateRegistry;
  readonly store: ViewStore;
  /** Emits after each reload: documents that name the suffix re-render. */
  readonly reloaded: Observable<void>;
  readonly shutdown: AbortSignal;
  readonly watching: () => { readonly target: string; readonly member: string | null };
  readonly agents: AgentIngest;
  readonly rateLimited: RateLimitCounts;
  readonly metrics: Metrics;
  readonly logger: Logger;
}): TransportContext {
  const { live, logger } = p;
  return {
    served: (scheme, proto, bind) => {
      const counters = new ListenerCounters(scheme, proto, bind.host, bind.port);
      return { handle: instrument(p.answering.handle, counters), counters: [counters] };
    },
    transfer: p.answering.transfer,
    log: (name) => logger.child({ component: name }),
    material: (name) => {
      const m = p.certificates.current.get(name);
      if (!m) throw new Error(`no certificate loaded for ${name}`);
      return m;
    },
    rateLimited: p.rateLimited,
    app: {
      get suffix() {
        return live().lxd.suffix;
      },
      get datacenter() {
        return live().consul.datacenter;
      },
      snapshot: () => p.store.current,
      updates: merge(p.store.snapshot$, p.reloaded),
      shutdown: p.shutdown,
      metrics: p.metrics,
      watching: p.watching,
      log: logger.child({ component: 'rest' }),
    },
    agents: p.agents,
    metrics: p.metrics,
  };
}
