import t from 'tap';
import { dig, kdig } from '../helpers/dig.js';
import { startLexa } from '../helpers/lexa.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';
import { runTable, setUpFixture, tearDownFixture, waitLexa, type Fixture } from '../helpers/nameforms.js';

// Plain DNS over UDP and TCP, asked by the real dig and kdig, answered by lexa watching the real LXD.
let fixture: Fixture;
const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
t.teardown(async () => {
  await lexa.close();
  await tearDownFixture();
});
fixture = await setUpFixture();
await waitLexa(dig(lexa.dnsPort), fixture);

t.test('dig over UDP', (t) => runTable(t, fixture, dig(lexa.dnsPort, ['+notcp'])));
t.test('dig over TCP', (t) => runTable(t, fixture, dig(lexa.dnsPort, ['+tcp'])));
t.test('kdig over UDP', (t) => runTable(t, fixture, kdig(lexa.dnsPort, ['+notcp']), { lowercasesQuestion: true }));
t.test('kdig over TCP', (t) => runTable(t, fixture, kdig(lexa.dnsPort, ['+tcp']), { lowercasesQuestion: true }));
