import type { Test } from 'tap';
import type { DnsClient, DnsReply } from './dig.js';
import { deleteByPrefix, instanceState, launch, lxc, waitFor } from './lxd-cli.js';

/**
 * The name-form table: every DNS name form lexa serves, against real containers on the real LXD, with expected
 * answers written as zone-file lines. The same table runs through every transport (UDP, TCP, DoT, DoH, DoQ) and
 * client (dig, kdig, curl, the Go DoQ client): only the DnsClient differs.
 */

export const PREFIX = 'nf-';
const SOA = 'lexa. 0 IN SOA ns.lexa. hostmaster.lexa. SERIAL 3600 600 604800 0';

/** Services use names no other test or demo container uses, so answers are exactly the fixture's. */
const CONTAINERS: Record<string, Record<string, string>> = {
  'nf-web-1': {
    'user.lexa.service.nfhttp.port': '80',
    'user.lexa.service.nfhttp.tags': 'blue',
    'user.lexa.service.nfhttp.weight': '2',
    'user.lexa.service.nfhttps.port': '443',
    'user.lexa.service.nfhttps.tags': 'app',
  },
  'nf-web-2': {
    'user.lexa.service.nfhttp.port': '80',
    'user.lexa.service.nfhttp.tags': 'green',
    'user.lexa.service.nfhttps.port': '443',
  },
  'nf-db-1': {
    'user.lexa.service.nfmysql.port': '3306',
    'user.lexa.service.nfmysql.tags': 'primary',
    'user.lexa.service.nfmysql.priority': '10',
    'user.lexa.service.nfdns.port': '53',
    'user.lexa.service.nfdns.proto': 'udp',
  },
};

/** Global addresses of each fixture container's eth0, as LXD reports them. */
export interface Fixture {
  readonly v4: Readonly<Record<string, string>>;
  readonly v6: Readonly<Record<string, string>>;
  /** The LXD server's name and the IPv4 its API listens on (the test bed's LXD is standalone). */
  readonly server: string;
  readonly serverV4: string;
}

/**
 * Launches the fixture (three running containers with services, one stopped), waits until LXD reports their
 * addresses, and returns them. `waitLexa` then checks lexa has them too.
 */
export async function setUpFixture(): Promise<Fixture> {
  await deleteByPrefix(PREFIX);
  await Promise.all(Object.entries(CONTAINERS).map(([name, config]) => launch(name, { config })));
  await launch('nf-off');
  await lxc('stop', '--force', 'nf-off');
  const v4: Record<string, string> = {};
  const v6: Record<string, string> = {};
  for (const name of Object.keys(CONTAINERS)) {
    await waitFor(
      async () => {
        const addrs = (await instanceState(name)).network?.['eth0']?.addresses ?? [];
        const a4 = addrs.find((a) => a.family === 'inet' && a.scope === 'global');
        const a6 = addrs.find((a) => a.family === 'inet6' && a.scope === 'global');
        if (!a4 || !a6) return false;
        v4[name] = a4.address;
        v6[name] = a6.address;
        return true;
      },
      { what: `${name} to get IPv4 and IPv6`, timeoutMs: 15_000 },
    );
  }
  const env = JSON.parse(await lxc('query', '/1.0')) as { environment: { server_name: string; addresses: string[] } };
  const serverV4 = env.environment.addresses.map((a) => a.replace(/:\d+$/, '')).find((a) => /^\d+(\.\d+){3}$/.test(a)) ?? '';
  return { v4, v6, server: env.environment.server_name, serverV4 };
}

export const tearDownFixture = () => deleteByPrefix(PREFIX);

/**
 * One question and the whole reply expected: the status (rcode), AA, and every section. `answer` is required, so
 * every row says what its answer section holds (empty for NXDOMAIN, NODATA and REFUSED); `authority` and
 * `additional` default to empty. Sections are compared as sorted sets, always, whatever the status.
 */
interface Case {
  readonly name: string;
  readonly type: string;
  readonly status: 'NOERROR' | 'NXDOMAIN' | 'REFUSED';
  readonly answer: readonly string[];
  readonly authority?: readonly string[];
  readonly additional?: readonly string[];
  /** Whether AA must be set (every in-zone reply); default true for NOERROR/NXDOMAIN. */
  readonly aa?: boolean;
}

export function cases(f: Fixture): Case[] {
  const { v4, v6 } = f;
  const tgt = (h: string) => `eth0.if.${h}.lexa.`;
  return [
    { name: 'nf-web-1.lexa', type: 'A', status: 'NOERROR', answer: [`nf-web-1.lexa. 0 IN A ${v4['nf-web-1']}`] },
    { name: 'nf-web-1.lexa', type: 'AAAA', status: 'NOERROR', answer: [`nf-web-1.lexa. 0 IN AAAA ${v6['nf-web-1']}`] },
    { name: 'NF-Web-1.LEXA', type: 'A', status: 'NOERROR', answer: [`NF-Web-1.LEXA. 0 IN A ${v4['nf-web-1']}`] },
    {
      name: 'nf-web-*.lexa',
      type: 'A',
      status: 'NOERROR',
      answer: [`nf-web-*.lexa. 0 IN A ${v4['nf-web-1']}`, `nf-web-*.lexa. 0 IN A ${v4['nf-web-2']}`],
    },
    {
      name: 'nf-*-1.lexa',
      type: 'AAAA',
      status: 'NOERROR',
      answer: [`nf-*-1.lexa. 0 IN AAAA ${v6['nf-db-1']}`, `nf-*-1.lexa. 0 IN AAAA ${v6['nf-web-1']}`],
    },
    { name: 'eth0.if.nf-db-1.lexa', type: 'A', status: 'NOERROR', answer: [`eth0.if.nf-db-1.lexa. 0 IN A ${v4['nf-db-1']}`] },
    {
      name: 'eth0.interface.nf-db-1.lexa',
      type: 'AAAA',
      status: 'NOERROR',
      answer: [`eth0.interface.nf-db-1.lexa. 0 IN AAAA ${v6['nf-db-1']}`],
    },
    { name: 'eth9.if.nf-db-1.lexa', type: 'A', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    {
      name: 'nfhttp.service.lexa',
      type: 'A',
      status: 'NOERROR',
      answer: [`nfhttp.service.lexa. 0 IN A ${v4['nf-web-1']}`, `nfhttp.service.lexa. 0 IN A ${v4['nf-web-2']}`],
    },
    { name: 'blue.nfhttp.service.lexa', type: 'A', status: 'NOERROR', answer: [`blue.nfhttp.service.lexa. 0 IN A ${v4['nf-web-1']}`] },
    {
      name: 'app.nfhttps.service.lexa',
      type: 'AAAA',
      status: 'NOERROR',
      answer: [`app.nfhttps.service.lexa. 0 IN AAAA ${v6['nf-web-1']}`],
    },
    { name: 'red.nfhttp.service.lexa', type: 'A', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    {
      name: '_nfhttp._tcp.service.lexa',
      type: 'SRV',
      status: 'NOERROR',
      // weight 2 → 2*256-1 = 511 and the default 1 → 255, so HAProxy's w/256+1 gives back 2 and 1
      answer: [`_nfhttp._tcp.service.lexa. 0 IN SRV 1 255 80 ${tgt('nf-web-2')}`, `_nfhttp._tcp.service.lexa. 0 IN SRV 1 511 80 ${tgt('nf-web-1')}`],
      additional: [
        `${tgt('nf-web-1')} 0 IN A ${v4['nf-web-1']}`,
        `${tgt('nf-web-1')} 0 IN AAAA ${v6['nf-web-1']}`,
        `${tgt('nf-web-2')} 0 IN A ${v4['nf-web-2']}`,
        `${tgt('nf-web-2')} 0 IN AAAA ${v6['nf-web-2']}`,
      ],
    },
    {
      name: '_nfhttps._app.service.lexa',
      type: 'SRV',
      status: 'NOERROR',
      answer: [`_nfhttps._app.service.lexa. 0 IN SRV 1 255 443 ${tgt('nf-web-1')}`],
      additional: [`${tgt('nf-web-1')} 0 IN A ${v4['nf-web-1']}`, `${tgt('nf-web-1')} 0 IN AAAA ${v6['nf-web-1']}`],
    },
    {
      name: '_nfmysql._primary.service.lexa',
      type: 'SRV',
      status: 'NOERROR',
      answer: [`_nfmysql._primary.service.lexa. 0 IN SRV 10 255 3306 ${tgt('nf-db-1')}`],
      additional: [`${tgt('nf-db-1')} 0 IN A ${v4['nf-db-1']}`, `${tgt('nf-db-1')} 0 IN AAAA ${v6['nf-db-1']}`],
    },
    {
      name: '_nfdns._udp.service.lexa',
      type: 'SRV',
      status: 'NOERROR',
      answer: [`_nfdns._udp.service.lexa. 0 IN SRV 1 255 53 ${tgt('nf-db-1')}`],
      additional: [`${tgt('nf-db-1')} 0 IN A ${v4['nf-db-1']}`, `${tgt('nf-db-1')} 0 IN AAAA ${v6['nf-db-1']}`],
    },
    { name: '_nfdns._tcp.service.lexa', type: 'SRV', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    // Consul's name form answers SRV as well: the same records and additionals as _nfhttp._tcp.service
    {
      name: 'nfhttp.service.lexa',
      type: 'SRV',
      status: 'NOERROR',
      answer: [`nfhttp.service.lexa. 0 IN SRV 1 255 80 ${tgt('nf-web-2')}`, `nfhttp.service.lexa. 0 IN SRV 1 511 80 ${tgt('nf-web-1')}`],
      additional: [
        `${tgt('nf-web-1')} 0 IN A ${v4['nf-web-1']}`,
        `${tgt('nf-web-1')} 0 IN AAAA ${v6['nf-web-1']}`,
        `${tgt('nf-web-2')} 0 IN A ${v4['nf-web-2']}`,
        `${tgt('nf-web-2')} 0 IN AAAA ${v6['nf-web-2']}`,
      ],
    },
    { name: 'nf-off.lexa', type: 'A', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    { name: 'nope.lexa', type: 'A', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    { name: 'nf-web-1.lexa', type: 'MX', status: 'NOERROR', answer: [], authority: [SOA] },
    // The test bed's LXD is standalone: the server is the one member, and its API listens on 127.0.0.1.
    { name: 'cluster.nf-web-1.lexa', type: 'CNAME', status: 'NOERROR', answer: [`cluster.nf-web-1.lexa. 0 IN CNAME ${f.server}.`] },
    { name: 'cluster.nf-web-1.lexa', type: 'A', status: 'NOERROR', answer: [`cluster.nf-web-1.lexa. 0 IN A ${f.serverV4}`] },
    { name: `${f.server}.cluster.nf-db-1.lexa`, type: 'A', status: 'NOERROR', answer: [`${f.server}.cluster.nf-db-1.lexa. 0 IN A ${f.serverV4}`] },
    { name: 'elsewhere.cluster.nf-db-1.lexa', type: 'A', status: 'NXDOMAIN', answer: [], authority: [SOA] },
    { name: 'service.lexa', type: 'A', status: 'NOERROR', answer: [], authority: [SOA] },
    { name: 'lexa', type: 'SOA', status: 'NOERROR', answer: [SOA] },
    // Every test that runs this table starts lexa on 127.0.0.1 (helpers/lexa.ts): the name server's default address.
    { name: 'lexa', type: 'NS', status: 'NOERROR', answer: ['lexa. 0 IN NS ns.lexa.'], additional: ['ns.lexa. 0 IN A 127.0.0.1'] },
    { name: 'ns.lexa', type: 'A', status: 'NOERROR', answer: ['ns.lexa. 0 IN A 127.0.0.1'] },
    { name: 'ns.lexa', type: 'AAAA', status: 'NOERROR', answer: [], authority: [SOA] },
    { name: 'nf-web-1.lexa', type: 'ANY', status: 'NOERROR', answer: [`nf-web-1.lexa. 0 IN A ${v4['nf-web-1']}`] },
    { name: 'example.com', type: 'A', status: 'REFUSED', aa: false, answer: [] },
    { name: '.', type: 'NS', status: 'REFUSED', aa: false, answer: [] },
  ];
}

export interface TableOptions {
  /** The client lower-cases question names before sending (kdig does), so answers echo the lower-cased name. */
  readonly lowercasesQuestion?: boolean;
}

/** Runs every case through `client`, one subtest assertion group per case. */
export async function runTable(t: Test, f: Fixture, client: DnsClient, opts: TableOptions = {}): Promise<void> {
  for (const raw of cases(f)) {
    const c = opts.lowercasesQuestion && raw.name !== raw.name.toLowerCase()
      ? { ...raw, answer: raw.answer.map((l) => l.replace(/^\S+/, (o) => o.toLowerCase())) }
      : raw;
    const r: DnsReply = await client(c.name, c.type);
    const label = `${c.name} ${c.type}`;
    t.equal(r.status, c.status, `${label}: status`, { raw: r.raw });
    const aa = c.aa ?? c.status !== 'REFUSED';
    t.equal(r.flags.includes('aa'), aa, `${label}: AA ${aa ? 'set' : 'clear'}`);
    t.same(r.answer, [...c.answer].sort(), `${label}: answer`, { raw: r.raw });
    t.same(r.authority, [...(c.authority ?? [])].sort(), `${label}: authority`, { raw: r.raw });
    t.same(r.additional, [...(c.additional ?? [])].sort(), `${label}: additional`, { raw: r.raw });
  }
}

/** Waits until lexa answers for every fixture container (it follows LXD's events; addresses settle). */
export async function waitLexa(client: DnsClient, f: Fixture): Promise<void> {
  for (const name of Object.keys(f.v6)) {
    await waitFor(async () => (await client(`${name}.lexa`, 'AAAA')).answer.length === 1, {
      what: `lexa to answer AAAA for ${name}`,
      timeoutMs: 15_000,
    });
  }
}
