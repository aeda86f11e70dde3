import t from 'tap';
import { addedKinds, metric, slopePerHour } from '../../src/bench/soak.js';

// The soak's arithmetic (src/bench/soak.ts): slopes, reading prom-client's exposition, comparing descriptors.

t.test('least-squares slope per hour', async (t) => {
  t.equal(slopePerHour([0, 0.5, 1, 1.5], [1, 2.5, 4, 5.5]), 3, 'a line: its slope');
  t.equal(slopePerHour([0, 1, 2], [5, 5, 5]), 0, 'flat');
  t.equal(slopePerHour([0, 1, 2, 3], [0, 2, 0, 2]), 0.4, 'noise around a small rise');
  t.equal(slopePerHour([1], [7]), 0, 'one sample: no slope');
  t.equal(slopePerHour([2, 2], [1, 9]), 0, 'one instant: no slope');
});

t.test('a metric is the sum of its samples whose labels match; a missing one is an error', async (t) => {
  const text = [
    '# HELP nodejs_active_resources x',
    'nodejs_active_resources{type="Timeout"} 5',
    'nodejs_active_resources{type="TCPSocketWrap"} 2',
    'nodejs_active_resources_total 7',
    'process_open_fds 31',
  ].join('\n');
  t.equal(metric(text, 'nodejs_active_resources'), 7, 'not nodejs_active_resources_total');
  t.equal(metric(text, 'nodejs_active_resources', 'type="Timeout"'), 5);
  t.equal(metric(text, 'process_open_fds'), 31);
  t.throws(() => metric(text, 'process_resident_memory_bytes'), /no process_resident_memory_bytes/);
});

t.test('descriptors added between two moments, by kind', async (t) => {
  t.same(addedKinds(['pipe', 'socket', 'socket'], ['anon_inode:inotify', 'pipe', 'socket', 'socket']), ['anon_inode:inotify']);
  t.same(addedKinds(['socket', 'socket'], ['socket']), []);
  t.same(addedKinds(['socket'], ['socket', 'socket']), ['socket'], 'a count, not a set');
});
