import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { IntegrationRepository } from '../../src/db/integration.repository.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { type RunWish, resolveWish } from '../../src/runs/trigger.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { createAuthentikIntegration } from '../support/fixtures.js';

/**
 * Incremental and targeted runs of an authentik integration end to end: the real SDK against
 * the fake authentik, the run asked for as the schedule, a webhook or `sync --user` asks.
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let ak: FakeAuthentik;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
  ak = await new FakeAuthentik().start();
});
afterAll(async () => {
  await ak.stop();
  await dropDb();
});

async function setup() {
  const domain = `${uniqueSlug('ak')}.test`;
  const app = uniqueSlug('app');
  // Set up without events: a feed read from a minute before the first full run (so that events
  // stored late are not missed: see authentikFeedCursorAt) would otherwise see the application
  // and its binding created and read the whole scope again until that minute has passed.
  const staff = ak.addGroup(`Staff ${domain}`);
  ak.withoutEvents(() => {
    ak.addApp(app);
    ak.bind(app, { group: staff.pk });
  });
  const people = ['ann', 'bob', 'cat'].map((name) => {
    const user = ak.addUser(`${name}@${domain}`);
    ak.addMember(staff.pk, user.pk);
    return user;
  });
  const t = await createAuthentikIntegration(db, config, ak, { app });
  const integration = (await new IntegrationRepository(db).find(t.integrationId))!;
  const run = async (wish: RunWish): Promise<RunSummary> => {
    const { run: queued } = await new RunRepository(db).trigger(t.integrationId, 'manual', false, await resolveWish(db, integration, wish));
    const outcome = await reconcile({ db, config, log: silentLog, connectorSettings: { retry: { retries: 1, minTimeoutMs: 5, maxTimeoutMs: 10 } } }, queued.id);
    if (outcome.kind !== 'finished') throw new Error(JSON.stringify(outcome));
    return outcome.run;
  };
  const accounts = async () => new DirectoryRepository(db).accountsOf(t.integrationId);
  return { domain, staff, people, t, run, accounts };
}

describe('authentik: incremental and targeted runs', () => {
  it('the first scheduled run is full and leaves a feed position; later ones read only what changed, in a few requests', async () => {
    const { domain, staff, people, run, accounts } = await setup();
    const first = await run({ kind: 'auto' });
    expect(first).toMatchObject({ mode: 'full', status: 'succeeded', counts: { usersCreated: 3 } });

    const quiet = await run({ kind: 'auto' });
    expect(quiet).toMatchObject({ mode: 'incremental', status: 'succeeded' });
    expect(quiet.counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, membershipsAdded: 0 });
    // The feed reads back a minute before its position (FEED_OVERLAP_MS). A full run's position
    // has read nothing of that minute, so the first incremental run reads this setup's users
    // once more; its position remembers them, and the next run passes over them.
    expect(quiet.stats?.requests).toBeLessThanOrEqual(9);
    const quieter = await run({ kind: 'auto' });
    expect(quieter).toMatchObject({ mode: 'incremental', status: 'succeeded' });
    expect(quieter.stats?.requests).toBe(2);

    ak.updateUser(people[1]!.pk, { is_active: false });
    const dan = ak.addUser(`dan@${domain}`);
    ak.addMember(staff.pk, dan.pk);
    const changed = await run({ kind: 'auto' });
    expect(changed).toMatchObject({ mode: 'incremental', status: 'succeeded', counts: { usersDeprovisioned: 1, usersCreated: 1, membershipsAdded: 1 } });
    const after = await accounts();
    expect(after.get(String(people[1]!.pk))?.active).toBe(false);
    expect(after.get(String(dan.pk))?.active).toBe(true);
    // A full run afterwards agrees: nothing was missed.
    expect((await run({ kind: 'full' })).counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  });

  it('sync --user provisions one user by login at once, and names a login nobody has in its warnings', async () => {
    const { domain, staff, run, accounts } = await setup();
    await run({ kind: 'full' });
    const eve = ak.addUser(`eve@${domain}`);
    ak.addMember(staff.pk, eve.pk);
    const onDemand = await run({ kind: 'targeted', subjects: { logins: [`eve@${domain}`, `nobody@${domain}`] } });
    expect(onDemand).toMatchObject({ mode: 'targeted', status: 'succeeded', counts: { usersCreated: 1, membershipsAdded: 1 } });
    expect(onDemand.warnings).toEqual([expect.objectContaining({ subject: `nobody@${domain}`, reason: expect.stringContaining('no authentik user') })]);
    expect((await accounts()).get(String(eve.pk))?.userName).toBe(`eve@${domain}`);
  });

  it('reads the whole scope instead, saying why, when the feed cannot be read', async () => {
    const { run } = await setup();
    await run({ kind: 'full' });
    ak.eventsAccess = 'forbidden';
    try {
      const fallback = await run({ kind: 'auto' });
      expect(fallback).toMatchObject({ mode: 'full', status: 'succeeded' });
      expect(fallback.warnings).toEqual([expect.objectContaining({ subject: 'change feed', reason: expect.stringContaining('read the whole scope instead') })]);
    } finally {
      ak.eventsAccess = 'ok';
    }
  });
});
