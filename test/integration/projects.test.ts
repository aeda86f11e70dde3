import t from 'tap';
import { curl, startLexa } from '../helpers/lexa.js';
import { LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';

// LXD projects on the real LXD: lexa watches one project (default "default") or all of them.
const PROJECT = 'lexa-it-p2';
// LXD refuses two instances with one name on the same bridge even across projects ("Instance DNS name already used
// on network"), so each project gets its own name.
const NAME = 'pj-a';
const OTHER = 'pj-b';

interface Doc { hosts: { name: string; project: string; interfaces: { ipv4: Record<string, string>[] } }[] }

async function cleanup(): Promise<void> {
  await lxc('delete', '--force', NAME).catch(() => undefined);
  await lxc('delete', '--force', OTHER, '--project', PROJECT).catch(() => undefined);
  await lxc('delete', '--force', 'pj-late', '--project', PROJECT).catch(() => undefined);
  await lxc('project', 'delete', PROJECT).catch(() => undefined);
}

t.before(async () => {
  await cleanup();
  // Shares the default project's images and profiles, so the test image and eth0 work there too.
  await lxc('project', 'create', PROJECT, '-c', 'features.images=false', '-c', 'features.profiles=false');
  await lxc('launch', 'lexa-busybox', NAME, '--quiet');
  await lxc('launch', 'lexa-busybox', OTHER, '--quiet', '--project', PROJECT);
});
t.teardown(cleanup);

/** `project/name` of the test's instances that lexa lists. */
const projectsOf = async (restUrl: string): Promise<string[]> => {
  const r = await curl(`${restUrl}/containers/`);
  return r.status === 200
    ? r.json<Doc>().hosts.filter((h) => /^pj-[ab]\./.test(h.name)).map((h) => `${h.project}/${h.name}`).sort()
    : [];
};

t.test('the default: only the default project', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(async () => (await projectsOf(lexa.restUrl)).length > 0, { what: 'the default-project instance' });
  t.same(await projectsOf(lexa.restUrl), ['default/pj-a.lexa']);
});

t.test('project = "<name>": only that project, events included', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"\n    project = "${PROJECT}"`);
  t.teardown(() => lexa.close());
  await waitFor(async () => (await projectsOf(lexa.restUrl)).length > 0, { what: `the ${PROJECT} instance` });
  t.same(await projectsOf(lexa.restUrl), [`${PROJECT}/pj-b.lexa`]);
  await lxc('launch', 'lexa-busybox', 'pj-late', '--quiet', '--project', PROJECT);
  await waitFor(async () => (await curl(`${lexa.restUrl}/containers/pj-late`)).status === 200, { what: 'an instance launched in the project after start' });
  t.pass('an instance launched later in the watched project appears');
});

t.test('all_projects = true: every project', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"\n    all_projects = true`);
  t.teardown(() => lexa.close());
  await waitFor(async () => (await projectsOf(lexa.restUrl)).length === 2, { what: 'both instances' });
  t.same(await projectsOf(lexa.restUrl), ['default/pj-a.lexa', `${PROJECT}/pj-b.lexa`]);
  await lxc('stop', '--force', OTHER, '--project', PROJECT);
  await waitFor(async () => (await projectsOf(lexa.restUrl)).join() === 'default/pj-a.lexa', { what: 'a stop in the other project to be seen' });
  t.pass('an event in a non-default project is followed');
});

t.test('a project that does not exist: a clear log line, not ready, no crash', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"\n    project = "no-such-project"`);
  t.teardown(() => lexa.close());
  const line = await waitFor(() => lexa.log.lines.find((l) => l['msg'] === 'lxd connection failed'), { what: 'a logged failure' });
  t.match(String(line['error']), /HTTP 500 from LXD: Project not found/, `the log says why: ${line['error']}`);
  t.equal((await curl(`${lexa.restUrl}/readyz`)).status, 503);
});
