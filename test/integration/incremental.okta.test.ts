import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { IntegrationRepository } from '../../src/db/integration.repository.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { type RunWish, resolveWish } from '../../src/runs/trigger.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration } from '../support/fixtures.js';

/**
 * Incremental and targeted runs of an Okta integration end to end: the real SDK against the fake
 * Okta org (its System Log written by every change), the run asked for as the schedule, a webhook
 * or `sync --user` asks.
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let okta: FakeOkta;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
  okta = await new FakeOkta().start();
});
afterAll(async () => {
  await okta.stop();
  await dropDb();
});

async function setup() {
  const domain = `${uniqueSlug('okta')}.test`;
  const appId = `0oa${uniqueSlug('app').replace(/[^A-Za-z0-9]/g, '')}`;
  const groupId = `00g${uniqueSlug('eng').replace(/[^A-Za-z0-9]/g, '')}`;
  // Set up without logging it: a feed read from a minute before the first full run (the feed's
  // overlap, see oktaFeedCursorAt) would otherwise read this setup's subjects again.
  const people = okta.withoutLog(() => {
    okta.addApp(appId);
    okta.addGroup(`Engineering ${domain}`, { id: groupId });
    okta.assignGroup(appId, groupId);
    return ['ann', 'bob', 'cat'].map((name) => {
      const user = okta.addUser(`${name}@${domain}`);
      okta.addMember(groupId, user.id);
      return user;
    });
  });
  const t = await createOktaIntegration(db, config, okta, { appId });
  const integration = (await new IntegrationRepository(db).find(t.integrationId))!;
  const run = async (wish: RunWish): Promise<RunSummary> => {
    const { run: queued } = await new RunRepository(db).trigger(t.integrationId, 'manual', false, await resolveWish(db, integration, wish));
    const outcome = await reconcile({ db, config, log: silentLog, connectorSettings: { retry: { retries: 1, minTimeoutMs: 5, maxTimeoutMs: 10 } } }, queued.id);
    if (outcome.kind !== 'finished') throw new Error(JSON.stringify(outcome));
    return outcome.run;
  };
  const accounts = async () => new DirectoryRepository(db).accountsOf(t.integrationId);
  return { domain, appId, groupId, people, run, accounts };
}

describe('Okta: incremental and targeted runs', () => {
  it('the first scheduled run is full and leaves a feed position; later ones read only what changed, in a few requests', async () => {
    const { domain, groupId, people, run, accounts } = await setup();
    const first = await run({ kind: 'auto' });
    expect(first).toMatchObject({ mode: 'full', status: 'succeeded', counts: { usersCreated: 3 } });

    const quiet = await run({ kind: 'auto' });
    expect(quiet).toMatchObject({ mode: 'incremental', status: 'succeeded' });
    expect(quiet.counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, membershipsAdded: 0 });
    expect(quiet.stats?.requests).toBe(1); // one empty page of the System Log

    okta.updateUser(people[1]!.id, { status: 'SUSPENDED' });
    const dan = okta.addUser(`dan@${domain}`);
    okta.addMember(groupId, dan.id);
    const changed = await run({ kind: 'auto' });
    expect(changed).toMatchObject({ mode: 'incremental', status: 'succeeded', counts: { usersDeprovisioned: 1, usersCreated: 1, membershipsAdded: 1 } });
    // The log (a page of events, then the empty page) and 2 per user it names (Bob, Dan).
    expect(changed.stats?.requests).toBe(2 + 2 * 2);
    // Per rate-limit bucket: Bob's suspension is read in place (users), Dan is new (the app, then his groups).
    expect(changed.stats).toMatchObject({ requestsLogs: 2, requestsUsers: 3, requestsApps: 1 });
    const after = await accounts();
    expect(after.get(people[1]!.id)?.active).toBe(false);
    expect(after.get(dan.id)?.active).toBe(true);
    // A full run afterwards agrees: nothing was missed.
    expect((await run({ kind: 'full' })).counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  });

  it('reads a profile change or a suspension of a user it holds through /api/v1/users alone, sparing the app\'s rate-limit bucket', async () => {
    const { domain, groupId, people, run, accounts } = await setup();
    await run({ kind: 'auto' });
    const [ann, bob, cat] = people as [(typeof people)[0], (typeof people)[0], (typeof people)[0]];
    okta.updateUser(ann.id, { profile: { firstName: 'Annie' } });
    okta.updateUser(bob.id, { status: 'SUSPENDED' });
    const mark = okta.requests.length;
    const changed = await run({ kind: 'auto' });
    expect(changed).toMatchObject({ mode: 'incremental', status: 'succeeded', counts: { usersUpdated: 1, usersDeprovisioned: 1 } });
    // (The fake org is shared: the feed's overlap may name earlier tests' users too.)
    const ours = (r: string) => people.some((p) => r.includes(p.id));
    const asked = okta.requests.slice(mark).filter(ours);
    expect(asked.filter((r) => r.startsWith('GET /api/v1/apps'))).toEqual([]);
    expect(asked.filter((r) => r.startsWith('GET /api/v1/users')).sort()).toEqual(
      [`GET /api/v1/users/${ann.id}`, `GET /api/v1/users/${ann.id}/groups`, `GET /api/v1/users/${bob.id}`, `GET /api/v1/users/${bob.id}/groups`].sort(),
    );
    expect((await accounts()).get(ann.id)?.givenName).toBe('Annie');
    expect((await accounts()).get(bob.id)?.active).toBe(false);

    // Bob's account is deprovisioned now: lifting his suspension asks the app whether he is in
    // scope, as would a profile change of Cat once she is out of the app and her account with her.
    okta.updateUser(bob.id, { status: 'ACTIVE' });
    okta.withoutLog(() => okta.removeMember(groupId, cat.id));
    await run({ kind: 'full' });
    okta.updateUser(cat.id, { profile: { firstName: 'Caterina' } });
    const again = okta.requests.length;
    const later = await run({ kind: 'auto' });
    expect(later).toMatchObject({ mode: 'incremental', status: 'succeeded' });
    expect(okta.requests.slice(again).filter((r) => ours(r) && r.startsWith('GET /api/v1/apps'))).toEqual([expect.stringContaining(`/users/${cat.id}?expand=user`)]);
    expect((await accounts()).get(cat.id)?.active).toBe(false);
    expect((await accounts()).get(bob.id)?.active).toBe(true);
    // A full run afterwards agrees.
    expect((await run({ kind: 'full' })).counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, usersReprovisioned: 0, membershipsAdded: 0, membershipsRemoved: 0 });
    void domain;
  });

  it('a user who left a group is read in place while another group assigned to the app keeps it in scope, and through the app otherwise', async () => {
    const { domain, appId, groupId, people, run, accounts } = await setup();
    const [ann, bob] = people as [(typeof people)[0], (typeof people)[0]];
    const ops = okta.withoutLog(() => {
      const g = okta.addGroup(`Ops ${domain}`);
      okta.assignGroup(appId, g.id);
      okta.addMember(g.id, ann.id);
      return g;
    });
    await run({ kind: 'auto' });
    okta.removeMember(groupId, ann.id); // still in Ops
    okta.removeMember(groupId, bob.id); // in no group the app is assigned to any more
    const ours = (r: string) => people.some((p) => r.includes(p.id));
    const mark = okta.requests.length;
    const changed = await run({ kind: 'auto' });
    expect(changed).toMatchObject({ mode: 'incremental', status: 'succeeded', counts: { membershipsRemoved: 2, usersDeprovisioned: 1 } });
    const apps = okta.requests.slice(mark).filter((r) => ours(r) && r.startsWith('GET /api/v1/apps'));
    expect(apps).toEqual([expect.stringContaining(`/users/${bob.id}?expand=user`)]);
    const after = await accounts();
    expect(after.get(ann.id)?.active).toBe(true);
    expect(after.get(bob.id)?.active).toBe(false);
    expect((await run({ kind: 'full' })).counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, usersReprovisioned: 0, membershipsAdded: 0, membershipsRemoved: 0 });
    void ops;
  });

  it('sync --user provisions one user by login at once (3 requests), and names a login nobody has in its warnings', async () => {
    const { domain, groupId, run, accounts } = await setup();
    await run({ kind: 'full' });
    const eve = okta.addUser(`eve@${domain}`);
    okta.addMember(groupId, eve.id);
    const onDemand = await run({ kind: 'targeted', subjects: { logins: [`eve@${domain}`, `nobody@${domain}`] } });
    expect(onDemand).toMatchObject({ mode: 'targeted', status: 'succeeded', counts: { usersCreated: 1, membershipsAdded: 1 } });
    expect(onDemand.stats?.requests).toBe(3 + 1);
    expect(onDemand.warnings).toEqual([expect.objectContaining({ subject: `nobody@${domain}`, reason: expect.stringContaining('no Okta user') })]);
    // A user Okta has but the app does not reach is named too, not passed over in silence.
    okta.addUser(`outsider@${domain}`);
    const outside = await run({ kind: 'targeted', subjects: { logins: [`outsider@${domain}`] } });
    expect(outside.counts).toMatchObject({ usersCreated: 0 });
    expect(outside.warnings).toEqual([
      expect.objectContaining({ subject: `outsider@${domain}`, reason: `the Okta user with the login "outsider@${domain}" is not assigned to the Okta app, so it is not provisioned (an account it had is deprovisioned)` }),
    ]);
    expect((await accounts()).get(eve.id)?.userName).toBe(`eve@${domain}`);
  });

  it('reads the whole scope instead, saying why, when the log cannot be read or names an app-level change', async () => {
    const { appId, run } = await setup();
    await run({ kind: 'full' });
    okta.fault = ({ path }) => (path === '/api/v1/logs' ? { status: 403, body: { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action' } } : undefined);
    try {
      const forbidden = await run({ kind: 'auto' });
      expect(forbidden).toMatchObject({ mode: 'full', status: 'succeeded' });
      expect(forbidden.warnings).toEqual([expect.objectContaining({ subject: 'change feed', reason: expect.stringMatching(/read the whole scope instead.*may not read Okta's System Log/) })]);
    } finally {
      okta.fault = undefined;
    }
    // Okta may quote the request's Authorization header back: never into the run's warnings.
    okta.fault = ({ path }) => (path === '/api/v1/logs' ? { status: 400, body: { errorCode: 'E0000001', errorSummary: `Api validation failed: Authorization: SSWS ${okta.token}` } } : undefined);
    try {
      const echoed = await run({ kind: 'auto' });
      expect(echoed).toMatchObject({ mode: 'full', status: 'succeeded' });
      expect(JSON.stringify(echoed.warnings)).not.toContain(okta.token);
      expect(JSON.stringify(echoed.warnings)).toContain('SSWS [redacted]');
    } finally {
      okta.fault = undefined;
    }

    okta.logEvent('application.lifecycle.deactivate', [{ id: appId, type: 'AppInstance', alternateId: appId, displayName: appId }]);
    const appChanged = await run({ kind: 'auto' });
    expect(appChanged).toMatchObject({ mode: 'full', status: 'succeeded' });
    expect(appChanged.warnings).toEqual([expect.objectContaining({ subject: 'change feed', reason: expect.stringContaining(`the Okta app ${appId} itself changed`) })]);
  });
});
