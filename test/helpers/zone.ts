import type { Answer } from 'dns-packet';

/**
 * Resource records as zone-file text, so tests read like the zones they describe:
 *   rr('web-1.lexa. 0 IN A 10.99.0.11')
 * Supports what lexa serves: A, AAAA, CNAME, NS, PTR, SRV, SOA. Names are written with their trailing dot and kept in
 * the case given (owner-name case matters: answers echo the question as asked).
 */
export function rr(line: string): Answer {
  const f = line.trim().split(/\s+/);
  if (f.length < 5) throw new Error(`zone: too few fields in "${line}"`);
  const [owner, ttlText, klass, type, ...rdata] = f as [string, string, string, string, ...string[]];
  const ttl = Number(ttlText);
  if (!Number.isInteger(ttl)) throw new Error(`zone: bad ttl in "${line}"`);
  if (klass !== 'IN') throw new Error(`zone: only class IN, in "${line}"`);
  const name = fqdn(owner, line);
  const want = (n: number) => {
    if (rdata.length !== n) throw new Error(`zone: ${type} takes ${n} rdata fields, in "${line}"`);
  };
  const num = (s: string | undefined) => {
    const v = Number(s);
    if (!Number.isInteger(v)) throw new Error(`zone: bad number "${s}" in "${line}"`);
    return v;
  };
  switch (type) {
    case 'A':
    case 'AAAA':
      want(1);
      return { name, ttl, class: 'IN', type, data: rdata[0]! };
    case 'CNAME':
    case 'NS':
    case 'PTR':
      want(1);
      return { name, ttl, class: 'IN', type, data: fqdn(rdata[0]!, line) };
    case 'SRV':
      want(4);
      return {
        name,
        ttl,
        class: 'IN',
        type,
        data: { priority: num(rdata[0]), weight: num(rdata[1]), port: num(rdata[2]), target: fqdn(rdata[3]!, line) },
      };
    case 'SOA':
      want(7);
      return {
        name,
        ttl,
        class: 'IN',
        type,
        data: {
          mname: fqdn(rdata[0]!, line),
          rname: fqdn(rdata[1]!, line),
          serial: num(rdata[2]),
          refresh: num(rdata[3]),
          retry: num(rdata[4]),
          expire: num(rdata[5]),
          minimum: num(rdata[6]),
        },
      };
    default:
      throw new Error(`zone: unsupported type ${type} in "${line}"`);
  }
}

/** One record as canonical zone-file text; the inverse of `rr`. OPT records are not zone data: rejected. */
export function text(rec: Answer): string {
  if (rec.type === 'OPT') throw new Error('zone: an OPT record is not zone data');
  const head = `${dotted(rec.name)} ${rec.ttl ?? 0} ${rec.class ?? 'IN'} ${rec.type}`;
  switch (rec.type) {
    case 'A':
    case 'AAAA':
      return `${head} ${rec.data}`;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return `${head} ${dotted(rec.data)}`;
    case 'SRV': {
      const d = rec.data;
      return `${head} ${d.priority ?? 0} ${d.weight ?? 0} ${d.port} ${dotted(d.target)}`;
    }
    case 'SOA': {
      const d = rec.data;
      return `${head} ${dotted(d.mname)} ${dotted(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    }
    default:
      throw new Error(`zone: cannot print a ${rec.type} record`);
  }
}

/** Records as sorted canonical lines: compare answers whose order is shuffled. */
export function sortedText(recs: readonly Answer[]): string[] {
  return recs.map(text).sort();
}

/** Zone lines normalised through the parser (catches typos in expectations) and sorted. */
export function zone(...lines: string[]): string[] {
  return lines.map((l) => text(rr(l))).sort();
}

function fqdn(name: string, line: string): string {
  if (name === '.') return '.';
  if (!name.endsWith('.')) throw new Error(`zone: "${name}" must be fully qualified (end with "."), in "${line}"`);
  return name.slice(0, -1);
}

function dotted(name: string): string {
  return name === '.' || name.endsWith('.') ? name : `${name}.`;
}

/** The rdata of a record, for tests that look inside one (A/AAAA/CNAME/NS: a string; SRV/SOA: an object). */
export function rdata<T = string>(rec: Answer): T {
  if (rec.type === 'OPT') throw new Error('zone: an OPT record has no rdata');
  return rec.data as T;
}
