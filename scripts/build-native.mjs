// Builds lexa's native addons with the C compiler and the headers of the Node that runs this script, never
// anything downloaded. Runs at `npm install`/`npm ci`:
//   native/udp_batch.c → native/build/udp_batch.node   batched UDP (recvmmsg/sendmmsg)
//   native/h2_session.c → native/build/h2_session.node DoH's HTTP/2 sessions on the nghttp2 inside Node; needs
//                                                      nghttp2's headers (Debian: libnghttp2-dev), never its library
// Where one cannot build (not Linux, no compiler, no headers) it says why and goes on (exit 0): lexa then serves
// UDP with Node's dgram, and HTTP/2 with node:http2: the same behaviour at a higher CPU cost per query.
//
//   node scripts/build-native.mjs --asan OUT [ADDON]   ADDON (udp_batch, the default, or h2_session) built with
//                                                      AddressSanitizer into OUT, for test/native/*-asan.test.ts;
//                                                      fails (exit 1) if it cannot.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Each addon: its source, what lexa does without it, and the compiler flags it needs beyond the shared ones. */
const ADDONS = {
  udp_batch: { without: "DNS over UDP uses Node's dgram", flags: [] },
  // Not linked against libnghttp2: the symbols resolve from the node process, which exports its own nghttp2;
  // -z now makes a missing one fail the load (native-h2.ts then falls back), not a request.
  h2_session: { without: 'DoH over HTTP/2 uses node:http2', flags: ['-Wl,-z,now'], headers: 'nghttp2/nghttp2.h' },
};

function skip(name, why) {
  console.log(`lexa: ${name} not built (${why}); ${ADDONS[name].without}`);
}

/** The first include directory holding `file`, if any. */
function includeDir(file, dirs) {
  return dirs.find((d) => existsSync(join(d, file)));
}

const nodeHeaders = includeDir('node_api.h', [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node']);
const cc = process.env.CC || 'cc';

/** Why `name` cannot be built here, or undefined. */
function missing(name) {
  if (process.platform !== 'linux') return `lexa's native addons are for Linux; this is ${process.platform}`;
  if (!nodeHeaders) return 'no node_api.h beside this Node (Debian: the nodejs package ships /usr/include/node)';
  const extra = ADDONS[name].headers;
  if (extra && !includeDir(extra, ['/usr/include', '/usr/local/include'])) return `no ${extra} (Debian: apt-get install libnghttp2-dev)`;
  return undefined;
}

function compile(name, out, flags) {
  mkdirSync(dirname(out), { recursive: true });
  const source = join(root, 'native', `${name}.c`);
  execFileSync(cc, [...flags, '-Wall', '-shared', '-fPIC', `-I${nodeHeaders}`, ...ADDONS[name].flags, '-o', out, source], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
}

const asan = process.argv.indexOf('--asan');
if (asan !== -1) {
  const target = process.argv[asan + 1];
  const name = process.argv[asan + 2] ?? 'udp_batch';
  if (!target) throw new Error('--asan OUT [ADDON]: where to write the instrumented addon');
  if (!(name in ADDONS)) throw new Error(`--asan: no addon ${name} (${Object.keys(ADDONS).join(', ')})`);
  const why = missing(name);
  if (why) throw new Error(`--asan: ${name} cannot be built: ${why}`);
  // -O1 and frame pointers: ASan's reports then name the lines; the same warnings as the release build.
  compile(name, target, ['-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer']);
  console.log(`lexa: built ${target} with AddressSanitizer`);
  process.exit(0);
}
for (const name of Object.keys(ADDONS)) {
  const why = missing(name);
  if (why) {
    skip(name, why);
    continue;
  }
  const out = join(root, 'native', 'build', `${name}.node`);
  try {
    compile(name, out, ['-O2']);
    console.log(`lexa: built ${out}`);
  } catch (err) {
    skip(name, `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`);
  }
}
