import { throttleTime, type Observable } from 'rxjs';
import type { Logger } from '../log/index.js';
import { AgentTokenIssuer, aliasConflicts, type Checker, type View } from '../streams/index.js';
import type { Site } from './sites.js';

/**
 * How often, at most, the agent-token issuer looks through the running instances for one that needs a token: a
 * new instance gets its token within about this after LXD reports it, and the scan stays off the hot path.
 */
const ISSUE_SCAN_MS = 1_000;
/**
 * How often, at most, the server-side checker re-reads the running instances for checks to start or stop: a new
 * service's check is scheduled within about this, and a burst of snapshots (a list, many check results) costs one
 * O(N) pass.
 */
const CHECK_SCAN_MS = 250;

/**
 * The work that follows the snapshot off the query path, each pass over the instances throttled: the agent-token
 * issuer of every site, the server-side checker, and the alias conflicts logged once each. Returns the stop.
 */
export function startWatchers(opts: {
  readonly sites: readonly Site[];
  readonly views: Observable<View>;
  readonly checker: Checker;
  /** Whether tokens are issued, and the default allow list, as the configuration in force says. */
  readonly issueTokens: () => boolean;
  readonly defaultServices: () => readonly string[];
  readonly logger: Logger;
}): () => void {
  const { logger } = opts;
  const throttled = <T>(o: Observable<T>, ms: number) => o.pipe(throttleTime(ms, undefined, { leading: true, trailing: true }));
  // Each site's tokens are written through its own client. Looking through every running instance costs O(N);
  // agents' states alone may publish a snapshot a second each.
  const issuing = opts.sites.map((site) => {
    const issuer = new AgentTokenIssuer({ client: site.client, log: logger.child({ component: 'agent' }), defaults: opts.defaultServices });
    return throttled(site.store.snapshot$, ISSUE_SCAN_MS).subscribe((s) => {
      if (opts.issueTokens() && s.synced) issuer.observe(s);
    });
  });
  // Alias conflicts are logged once each when they appear (a scan of O(N), at most once a second).
  let conflicts = new Set<string>();
  const conflicting = throttled(opts.views, ISSUE_SCAN_MS).subscribe((s) => {
    const now = new Set(aliasConflicts(s));
    for (const c of now) if (!conflicts.has(c)) logger.warn('alias conflict', { problem: c });
    conflicts = now;
  });
  const checking = throttled(opts.views, CHECK_SCAN_MS).subscribe((s) => opts.checker.observe(s));
  return () => {
    for (const s of [...issuing, conflicting, checking]) s.unsubscribe();
    opts.checker.stop();
  };
}
