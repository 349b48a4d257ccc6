import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply-plan.js';
import { emptyPlan } from '../../src/core/plan.js';
import { databaseNow } from '../../src/runs/read-stamps.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { type RunRequest, RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { type ReconcileDeps, reconcile } from '../../src/runs/reconcile.js';
import { group, user } from '../support/builders.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { MemoryIdp } from '../support/memory-idp.js';

/**
 * SPEC "Run": nothing read later may be overwritten by a run that read earlier, with targeted
 * runs applying while a full run is in flight (issue #18). Each race is played deterministically:
 * a read is held after it captured the IdP, or an apply between two batches, while another run
 * goes through.
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true' });
});
afterAll(async () => dropDb());

async function setup() {
  const slug = uniqueSlug('race');
  const tenant = (await new TenantRepository(db).create(slug, slug))!;
  const { integration } = await new IntegrationService(db, config).create({
    tenant: slug,
    provider: 'okta',
    baseUrl: 'http://127.0.0.1:9',
    token: 'unused',
    verify: false,
  });
  const idp = new MemoryIdp();
  const deps = (extra: Partial<ReconcileDeps> = {}): ReconcileDeps => ({ db, config, log: silentLog, connectorFor: () => idp.connector(), ...extra });
  const start = async (request: RunRequest, extra: Partial<ReconcileDeps> = {}): Promise<RunSummary> => {
    const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false, request);
    const outcome = await reconcile(deps(extra), run.id);
    if (outcome.kind !== 'finished') throw new Error(`run ${run.id}: ${JSON.stringify(outcome)}`);
    return outcome.run;
  };
  const full = (extra: Partial<ReconcileDeps> = {}) => start({ mode: 'full', lane: 'full' }, extra);
  const targeted = (userIds: string[], groupIds: string[] = []) => start({ mode: 'targeted', lane: 'quick', subjects: { userIds, groupIds } });
  const account = async (externalId: string) => (await new DirectoryRepository(db).accountsOf(integration.id, [externalId])).get(externalId);
  const members = async (groupId: string) =>
    (await new DirectoryRepository(db).membershipPairs(integration.id, { by: 'group', externalIds: [groupId] })).map((p) => p.user).sort();
  return { idp, tenant, integration, full, targeted, account, members };
}

/** A promise and its resolver. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('no stale overwrite between a full run and targeted runs', () => {
  it('a full run that read X active before an event deactivated X does not undo the targeted run that applied it', async () => {
    const { idp, full, targeted, account } = await setup();
    idp.put(user('x'));
    idp.put(user('y'));
    expect((await full()).status).toBe('succeeded');

    // The full run reads X active, then is held before it declares its read and loads the tenant.
    const held = gate();
    idp.pauseFullRead = held.wait;
    const captured = gate();
    idp.onCaptured = (kind) => kind === 'full' && captured.open();
    const inFlight = full();
    await captured.wait;
    idp.onCaptured = undefined;

    // X is deactivated in the IdP; its event's targeted run applies it while the full run waits.
    idp.put(user('x', { active: false }));
    const event = await targeted(['x']);
    expect(event).toMatchObject({ status: 'succeeded', mode: 'targeted', counts: { usersDeprovisioned: 1 } });
    expect((await account('x'))?.active).toBe(false);

    held.open();
    const stale = await inFlight;
    expect(stale.status).toBe('succeeded');
    // It planned to reactivate X from its older read, and dropped that: X stays as read later.
    expect(stale.stats).toMatchObject({ staleSkipped: 1 });
    expect(stale.counts).toMatchObject({ usersReprovisioned: 0, usersDeprovisioned: 0 });
    expect((await account('x'))?.active).toBe(false);
    // The next full run reads after the event, and agrees.
    expect((await full()).counts).toMatchObject({ usersReprovisioned: 0, usersDeprovisioned: 0, usersUpdated: 0 });
    expect((await account('x'))?.active).toBe(false);
  });

  it('a full run held between two applied batches drops its older view of what a targeted run applied meanwhile', async () => {
    const { idp, full, targeted, account, members } = await setup();
    idp.put(user('x', { displayName: 'X One' }));
    idp.put(user('y'));
    idp.putGroup(group('g'), ['y']);
    expect((await full()).status).toBe('succeeded');

    // The full run reads a new group, X renamed "X Two" and X joining g; it is held after its
    // first batch (the new group), before the user updates and memberships.
    idp.putGroup(group('h'));
    idp.put(user('x', { displayName: 'X Two' }));
    idp.members.get('g')!.add('x');
    const paused = gate();
    const held = gate();
    let batches = 0;
    const inFlight = full({
      batchSize: 1,
      afterBatch: async () => {
        if (++batches === 1) {
          paused.open();
          await held.wait;
        }
      },
    });
    await paused.wait;

    // Meanwhile X is renamed again and leaves g; the targeted run reads and applies that.
    idp.put(user('x', { displayName: 'X Three' }));
    idp.members.get('g')!.delete('x');
    const event = await targeted(['x']);
    expect(event.status).toBe('succeeded');
    expect((await account('x'))?.displayName).toBe('X Three');

    held.open();
    const stale = await inFlight;
    expect(stale.status).toBe('succeeded');
    expect(stale.counts).toMatchObject({ groupsCreated: 1, usersUpdated: 0, membershipsAdded: 0 });
    expect(stale.stats).toMatchObject({ staleSkipped: 2 });
    expect((await account('x'))?.displayName).toBe('X Three');
    expect(await members('g')).toEqual(['y']);
  });

  it('a targeted run that read before a full run began applying drops everything it planned', async () => {
    const { idp, full, targeted, account } = await setup();
    idp.put(user('x'));
    expect((await full()).status).toBe('succeeded');
    idp.put(user('x', { active: false }));

    // The targeted run reads X suspended, then is held; X is reactivated and a full run reads and applies that.
    const held = gate();
    idp.pauseTargetedRead = held.wait;
    const captured = gate();
    idp.onCaptured = (kind) => kind === 'targeted' && captured.open();
    const inFlight = targeted(['x']);
    await captured.wait;
    idp.onCaptured = undefined;
    idp.put(user('x', { displayName: 'Back' }));
    const later = await full();
    expect(later.counts).toMatchObject({ usersUpdated: 1, usersDeprovisioned: 0 });

    held.open();
    const stale = await inFlight;
    expect(stale.status).toBe('succeeded');
    expect(stale.counts).toMatchObject({ usersDeprovisioned: 0 });
    expect(stale.stats).toMatchObject({ staleSkipped: 1 });
    expect(await account('x')).toMatchObject({ active: true, displayName: 'Back' });
  });

  it('a targeted run that finds nothing to change still keeps an older full view from being applied over what it read', async () => {
    const { idp, full, targeted, account } = await setup();
    idp.put(user('x', { displayName: 'B' }));
    expect((await full()).status).toBe('succeeded');

    // The IdP flips X to "A": a full run reads that and is held; X flips back to "B", which the
    // tenant holds already, so the targeted run that reads it plans nothing.
    idp.put(user('x', { displayName: 'A' }));
    const held = gate();
    idp.pauseFullRead = held.wait;
    const captured = gate();
    idp.onCaptured = (kind) => kind === 'full' && captured.open();
    const inFlight = full();
    await captured.wait;
    idp.onCaptured = undefined;
    idp.put(user('x', { displayName: 'B' }));
    expect((await targeted(['x'])).counts).toMatchObject({ usersUpdated: 0 });

    held.open();
    const stale = await inFlight;
    expect(stale.stats).toMatchObject({ staleSkipped: 1 });
    expect((await account('x'))?.displayName).toBe('B');
  });
});

describe('targeted runs', () => {
  it('apply exactly what a full run would for the named subjects, and nothing for anyone else', async () => {
    const { idp, full, targeted, account, members } = await setup();
    idp.put(user('a'));
    idp.put(user('b'));
    idp.put(user('c'));
    idp.putGroup(group('g'), ['a', 'b']);
    idp.putGroup(group('h'), ['a']);
    expect((await full()).status).toBe('succeeded');

    // Behind the tenant's back: b renamed, c suspended (not named), a leaves h and a new hire d joins g.
    idp.put(user('b', { displayName: 'Bee' }));
    idp.put(user('c', { active: false }));
    idp.members.get('h')!.delete('a');
    idp.put(user('d'));
    idp.members.get('g')!.add('d');

    const run = await targeted(['a', 'b'], ['g']);
    expect(run).toMatchObject({ status: 'succeeded', mode: 'targeted' });
    // a's memberships (h removed), b's rename, g's members (d granted an account and added); c untouched.
    expect(run.counts).toMatchObject({ usersUpdated: 1, usersCreated: 1, membershipsAdded: 1, membershipsRemoved: 1, usersDeprovisioned: 0, groupsDeleted: 0 });
    expect((await account('b'))?.displayName).toBe('Bee');
    expect((await account('c'))?.active).toBe(true);
    expect(await members('g')).toEqual(['a', 'b', 'd']);
    expect(await members('h')).toEqual([]);

    // A full run afterwards finds only what was not named: c.
    expect((await full()).counts).toMatchObject({ usersDeprovisioned: 1, usersUpdated: 0, usersCreated: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  });

  it('read the whole scope instead when more users are named than a full read costs, saying why', async () => {
    const { idp, full, targeted } = await setup();
    const ids = Array.from({ length: 30 }, (_, i) => `w${i}`);
    for (const id of ids) idp.put(user(id));
    expect((await full()).status).toBe('succeeded');
    for (const id of ids) idp.put(user(id, { displayName: `${id} renamed` }));
    const wide = await targeted(ids);
    expect(wide).toMatchObject({ mode: 'full', status: 'succeeded', counts: { usersUpdated: 30 } });
    expect(wide.warnings).toEqual([expect.objectContaining({ subject: 'targeted read', reason: expect.stringContaining('read the whole scope instead') })]);
  });

  it('deprovision a named user that left the IdP, and delete a named group that did, with its memberships', async () => {
    const { idp, full, targeted, account, members } = await setup();
    idp.put(user('a'));
    idp.put(user('b'));
    idp.putGroup(group('g'), ['a', 'b']);
    expect((await full()).status).toBe('succeeded');
    idp.users.delete('a');
    idp.members.get('g')!.delete('a');
    expect((await targeted(['a'])).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 1 });
    expect((await account('a'))?.active).toBe(false);
    idp.groups.delete('g');
    idp.members.delete('g');
    expect((await targeted([], ['g'])).counts).toMatchObject({ groupsDeleted: 1, usersDeprovisioned: 0 });
    expect(await members('g')).toEqual([]);
    expect((await account('b'))?.active).toBe(true);
  });

  it('takes a member it read again (it joined a named group) as the second read found it: gone, and in no group', async () => {
    // Found by the interleavings property (seed 594990749): the first read's listing of the
    // group stood for the member even after the run's own later read found it deleted.
    const { idp, full, targeted, account, members } = await setup();
    idp.put(user('x'));
    idp.put(user('y'));
    idp.putGroup(group('g'), ['x']);
    expect((await full()).status).toBe('succeeded');
    idp.members.get('g')!.add('y');
    const held = gate();
    idp.pauseTargetedRead = held.wait;
    const captured = gate();
    idp.onCaptured = (kind) => kind === 'targeted' && captured.open();
    const run = targeted([], ['g']);
    await captured.wait;
    idp.onCaptured = undefined;
    // After the group was listed with y in it, y is deleted; the run reads y again (it joined g).
    idp.users.delete('y');
    idp.members.get('g')!.delete('y');
    held.open();
    const done = await run;
    expect(done.status).toBe('succeeded');
    expect(await members('g')).toEqual(['x']);
    expect((await account('y'))?.active).toBe(false);
  });
});

describe('users taken as in scope from the tenant (a profile change read through Okta\'s users API)', () => {
  /**
   * A run that read X in place took X's scope from the tenant's state when it loaded it. A run
   * whose read ended before that one began may still deprovision X after (it applies later):
   * the first run's writes on X are dropped then, to be read again through the app.
   */
  async function readInPlace(deprovisionedMeanwhile: boolean) {
    const { idp, integration, tenant, full, account } = await setup();
    idp.put(user('x'));
    idp.put(user('y'));
    expect((await full()).status).toBe('succeeded');
    // This run's read began after the full run's ended.
    const start = await databaseNow(db);
    const previous = (await account('x'))!;
    if (deprovisionedMeanwhile) {
      await db.updateTable('accounts').set({ active: false }).where('integration_id', '=', integration.id).where('external_id', '=', 'x').execute();
    }
    const renamed = user('x', { givenName: 'Xavier' });
    const plan = { ...emptyPlan(), usersUpdated: [{ user: renamed, changed: ['givenName' as const], previous }, { user: user('y', { givenName: 'Yves' }), changed: ['givenName' as const], previous: (await account('y'))! }] };
    const scope = { tenantId: tenant.id, integrationId: integration.id, runId: (await new RunRepository(db).trigger(integration.id, 'manual', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['x', 'y'] } })).run.id };
    const result = await applyPlan(db, scope, plan, { deprovisionMode: 'suspend' }, { read: { runId: scope.runId, start, assumedInScope: ['x'] } });
    return { result, x: (await account('x'))!, y: (await account('y'))! };
  }

  it('applies to them while their accounts stay active', async () => {
    const { result, x, y } = await readInPlace(false);
    expect(result.stale).toBe(0);
    expect(x.givenName).toBe('Xavier');
    expect(y.givenName).toBe('Yves');
  });

  it('drops its writes on one whose account another run deprovisioned after it loaded the tenant, and only those', async () => {
    const { result, x, y } = await readInPlace(true);
    expect(result.stale).toBe(1);
    expect(result.staleSubjects.userIds).toEqual(['x']);
    expect(x).toMatchObject({ givenName: 'x', active: false });
    expect(y.givenName).toBe('Yves');
  });
});
