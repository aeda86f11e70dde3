// Builds native/udp_batch.c (batched UDP: recvmmsg/sendmmsg) into native/build/udp_batch.node with the C compiler
// and the headers of the Node that runs this script, never anything downloaded. Runs at `npm install`/`npm ci`.
// Where it cannot build (not Linux, no compiler, no headers) it says why and exits 0: lexa then serves UDP with
// Node's dgram, the same behaviour at a higher CPU cost per query.
//
//   node scripts/build-native.mjs --asan OUT    the same source built with AddressSanitizer into OUT, for
//                                               test/native/udp-batch-asan.test.ts; fails (exit 1) if it cannot.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'udp_batch.c');
const out = join(root, 'native', 'build', 'udp_batch.node');

function skip(why) {
  console.log(`lexa: batched UDP not built (${why}); DNS over UDP uses Node's dgram`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`recvmmsg/sendmmsg are Linux system calls; this is ${process.platform}`);
const headers = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
if (!headers) skip('no node_api.h beside this Node (Debian: the nodejs package ships /usr/include/node)');
const cc = process.env.CC || 'cc';
const asan = process.argv.indexOf('--asan');
if (asan !== -1) {
  const target = process.argv[asan + 1];
  if (!target) throw new Error('--asan OUT: where to write the instrumented addon');
  mkdirSync(dirname(target), { recursive: true });
  // -O1 and frame pointers: ASan's reports then name the lines; the same warnings as the release build.
  execFileSync(cc, ['-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer', '-Wall', '-shared', '-fPIC', `-I${headers}`, '-o', target, source], { stdio: 'inherit' });
  console.log(`lexa: built ${target} with AddressSanitizer`);
  process.exit(0);
}
try {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync(cc, ['-O2', '-Wall', '-shared', '-fPIC', `-I${headers}`, '-o', out, source], { stdio: ['ignore', 'inherit', 'pipe'] });
  console.log(`lexa: built ${out}`);
} catch (err) {
  skip(`${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`);
}
