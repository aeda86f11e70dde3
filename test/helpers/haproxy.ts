import net from 'node:net';

/** One command to HAProxy's runtime API on the admin socket `admin`; resolves with the whole reply. */
export function runtime(admin: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(admin);
    let out = '';
    sock.on('data', (d) => (out += d));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
    sock.write(`${command}\n`);
  });
}

/** Addresses (`addr:port`) held by a backend's slots, from `show servers state <backend>`, sorted. */
export async function slots(admin: string, backend: string): Promise<string[]> {
  const lines = (await runtime(admin, `show servers state ${backend}`)).split('\n');
  const header = lines.find((l) => l.startsWith('# be_id'))?.slice(2).split(' ') ?? [];
  const addr = header.indexOf('srv_addr');
  const port = header.indexOf('srv_port');
  return lines
    .filter((l) => /^\d+ /.test(l))
    .map((l) => l.split(' '))
    .filter((f) => f[addr] && f[addr] !== '-' && f[addr] !== '0.0.0.0' && f[addr] !== '::')
    .map((f) => `${f[addr]}:${f[port]}`)
    .sort();
}
