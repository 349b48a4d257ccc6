import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { type AkBinding, type AkGroup, FakeAuthentik } from '../support/fake-authentik.js';
import { authentikMappedBody } from '../support/webhook-bodies.js';

// The Okta end-to-end scenarios, run for an authentik integration through the CLI.
const cli = new CliHarness();
const TOKEN = `ak-token-${randomBytes(8).toString('hex')}`;
let ak: FakeAuthentik;
let eng: AkGroup;
let ops: AkGroup;
let opsBinding: AkBinding;
let id: string;

beforeAll(async () => {
  ak = await new FakeAuthentik().start();
  ak.token = TOKEN;
  ak.maxPageSize = 2;
  const ann = ak.addUser('ann.lee@ak-e2e.test', { pk: 21 });
  const bob = ak.addUser('bob.king@ak-e2e.test', { pk: 22 });
  ak.addUser('robot', { pk: 23, type: 'service_account' });
  eng = ak.addGroup('Engineering');
  ops = ak.addGroup('Ops');
  ak.addMember(eng.pk, ann.pk);
  ak.addMember(ops.pk, bob.pk);
  ak.addMember(eng.pk, 23);
  ak.addApp('wiki');
  ak.bind('wiki', { group: eng.pk });
  opsBinding = ak.bind('wiki', { group: ops.pk });
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'globex']);
  await cli.start();
}, 60_000);

afterAll(async () => {
  await ak?.stop();
  await cli.stop();
});

const sync = () => cli.json<RunSummaryJson>(['sync', id, '--wait']);

describe('dirsync CLI with authentik, end to end', () => {
  it('creates an authentik integration scoped to an application and syncs it', async () => {
    const created = await cli.json<{ id: string; provider: string; authentikApp: string }>([
      'integration', 'create', '--tenant', 'globex', '--provider', 'authentik', '--base-url', ak.url, '--token', TOKEN, '--authentik-app', 'wiki',
    ]);
    expect(created).toMatchObject({ provider: 'authentik', authentikApp: 'wiki' });
    id = created.id;
    const run = await sync();
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 2, groupsCreated: 2, membershipsAdded: 2 });
    expect(await cli.json(['groups', '--tenant', 'globex'])).toEqual([
      { id: expect.any(String), name: 'Engineering', members: ['ann.lee@ak-e2e.test'] },
      { id: expect.any(String), name: 'Ops', members: ['bob.king@ak-e2e.test'] },
    ]);
    expect((await sync()).counts).toEqual(ZERO_COUNTS);
  }, 60_000);

  it('shows deactivation, a removed member, a renamed group and an unbound group with the right counts', async () => {
    ak.updateUser(21, { is_active: false });
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, usersDeprovisioned: 1 });
    const ann = (await cli.json<{ userName: string; active: boolean; locked: boolean }[]>(['users', '--tenant', 'globex']))[0];
    expect(ann).toMatchObject({ userName: 'ann.lee@ak-e2e.test', active: false, locked: true });

    ak.addUser('cat.ray@ak-e2e.test', { pk: 24, groups: [ops.pk] });
    ak.removeMember(ops.pk, 22); // bob leaves the scope: suspended, and his membership goes (memberships mirror authentik in every mode)
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1, usersDeprovisioned: 1, membershipsAdded: 1, membershipsRemoved: 1 });

    ak.addUser('dan.wu@ak-e2e.test', { pk: 25, groups: [ops.pk, eng.pk] });
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1, membershipsAdded: 2 });
    ak.removeMember(eng.pk, 25); // still in scope through Ops: only the membership goes
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, membershipsRemoved: 1 });

    ak.updateGroup(ops.pk, { name: 'Operations' }); // through authentik's API: its model event names the group
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, groupsUpdated: 1 });

    ak.unbind(opsBinding);
    // Its two memberships (bob, suspended but still listed, and dan) go with the group.
    expect((await sync()).counts).toEqual({ ...ZERO_COUNTS, groupsDeleted: 1, usersDeprovisioned: 2, membershipsRemoved: 2 });
    expect(await cli.json(['groups', '--tenant', 'globex'])).toEqual([{ id: expect.any(String), name: 'Engineering', members: ['ann.lee@ak-e2e.test'] }]);
    expect((await sync()).counts).toEqual(ZERO_COUNTS);
  }, 60_000);

  it('an authentik notification for a deleted group reaches Postgres within seconds', async () => {
    const { webhookSecret } = await cli.json<{ webhookSecret: string }>(['integration', 'rotate-webhook-secret', id]);
    // Another bound group stays: deleting the last one would leave an empty groups listing, which is held.
    const design = ak.addGroup('Design');
    ak.bind('wiki', { group: design.pk });
    await sync();
    ak.groups.delete(eng.pk);
    for (const u of ak.users.values()) ak.removeMember(eng.pk, u.pk);
    // authentik deletes a group's policy bindings with it (PolicyBinding.group is on_delete=CASCADE).
    for (const b of ak.bindings.filter((x) => x.group === eng.pk)) ak.unbind(b);
    const res = await fetch(`http://127.0.0.1:${cli.port}/webhooks/${id}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${webhookSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(authentikMappedBody('model_deleted', { app: 'authentik_core', model_name: 'group', pk: eng.pk, name: 'Engineering' })),
    });
    expect(res.status).toBe(200);
    const { runId } = (await res.json()) as { runId: string };
    // The run the notification queued is what the wait is for; then the groups are read once.
    // Waited for in Postgres: a CLI call a poll would start a process every 100 ms.
    await cli.waitForRunStatus(runId, { timeoutMs: 10_000 });
    const groups = await cli.json<{ name: string }[]>(['groups', '--tenant', 'globex']);
    expect(groups.map((g) => g.name)).toEqual(['Design']);
    expect(await cli.json(['run', 'show', runId])).toMatchObject({ trigger: 'webhook', status: 'succeeded' });
  }, 60_000);

  it('never prints or logs the token', async () => {
    const shown = await cli.run(['integration', 'show', id]);
    expect(shown.stdout).not.toContain(TOKEN);
    expect(cli.serverLog).not.toContain(TOKEN);
  });
});
