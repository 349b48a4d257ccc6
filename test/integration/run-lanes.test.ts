import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { applyPlan } from '../../src/apply/apply-plan.js';
import { emptyPlan } from '../../src/core/plan.js';
import { group, user } from '../support/builders.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { UserError } from '../../src/errors.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { resolveWish, syncWish } from '../../src/runs/trigger.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true' });
});
afterAll(async () => dropDb());

async function okta() {
  const slug = uniqueSlug('lane');
  await new TenantRepository(db).create(slug, slug);
  const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 't', verify: false });
  return integration;
}

describe('run lanes and coalescing', () => {
  it('queues targeted runs beside a queued full run, and adds the subjects of triggers that join a queued one', async () => {
    const integration = await okta();
    const runs = new RunRepository(db);
    const full = await runs.trigger(integration.id, 'schedule', false, { mode: 'full', lane: 'full' });
    const a = await runs.trigger(integration.id, 'webhook', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u1'] } });
    const b = await runs.trigger(integration.id, 'webhook', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u2', '00u1'], groupIds: ['00g1'] } });
    const c = await runs.trigger(integration.id, 'manual', false, { mode: 'targeted', lane: 'quick', subjects: { logins: ['jane@example.com'] } });
    expect(full.created && a.created).toBe(true);
    expect([b.created, c.created]).toEqual([false, false]);
    expect(b.run.id).toBe(a.run.id);
    expect(a.run.id).not.toBe(full.run.id);
    expect(await runs.subjects(a.run.id)).toEqual({ userIds: ['00u1', '00u2'], logins: ['jane@example.com'], groupIds: ['00g1'] });
    // A full trigger joins the queued full run, not the targeted one.
    expect((await runs.trigger(integration.id, 'manual', false, { mode: 'full', lane: 'full' })).run.id).toBe(full.run.id);
    // Both may run at once: one running run per lane.
    expect((await runs.claim(full.run.id)).kind).toBe('claimed');
    expect((await runs.claim(a.run.id)).kind).toBe('claimed');
    // While they run, a trigger in each lane queues one follow-up.
    const next = await runs.trigger(integration.id, 'webhook', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u3'] } });
    expect(next.created).toBe(true);
    expect(await runs.subjects(next.run.id)).toEqual({ userIds: ['00u3'], logins: [], groupIds: [] });
  });

  it('widens a queued targeted run to incremental (subjects kept), and a dry run is always a full one', async () => {
    const integration = await okta();
    const runs = new RunRepository(db);
    const a = await runs.trigger(integration.id, 'webhook', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u1'] } });
    const b = await runs.trigger(integration.id, 'schedule', false, { mode: 'incremental', lane: 'quick' });
    expect(b).toMatchObject({ created: false, run: { id: a.run.id, mode: 'incremental' } });
    expect((await runs.subjects(a.run.id)).userIds).toEqual(['00u1']);
    const c = await runs.trigger(integration.id, 'webhook', false, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u2'] } });
    expect(c.run.mode).toBe('incremental');
    expect((await runs.subjects(a.run.id)).userIds).toEqual(['00u1', '00u2']);
    const dry = await runs.trigger(integration.id, 'manual', true, { mode: 'targeted', lane: 'quick', subjects: { userIds: ['00u9'] } });
    expect(dry.run).toMatchObject({ mode: 'full', dryRun: true });
  });

  it('asks for an incremental run only once a full run left a feed position and none is due', async () => {
    const integration = await okta();
    expect(await resolveWish(db, integration, { kind: 'auto' })).toEqual({ mode: 'full', lane: 'full' });
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(integration.id, 'manual', false, { mode: 'full', lane: 'full' });
    await runs.claim(run.id);
    await runs.finish(run.id, { status: 'succeeded', counts: {} as never, stats: {} });
    await db.updateTable('integrations').set({ feed_cursor: 'since:2026-11-30T00:00:00.000Z' }).where('id', '=', integration.id).execute();
    expect(await resolveWish(db, integration, { kind: 'auto' })).toEqual({ mode: 'incremental', lane: 'quick' });
    // Past full-every, the schedule reads everything again.
    await db.updateTable('runs').set({ finished_at: new Date(Date.now() - 25 * 3_600_000) }).where('id', '=', run.id).execute();
    expect(await resolveWish(db, integration, { kind: 'auto' })).toEqual({ mode: 'full', lane: 'full' });
    expect(await resolveWish(db, { ...integration, fullEveryMs: 48 * 3_600_000 }, { kind: 'auto' })).toEqual({ mode: 'incremental', lane: 'quick' });
    expect(await resolveWish(db, integration, { kind: 'targeted', subjects: { logins: ['a@b.c'] } })).toMatchObject({ mode: 'targeted', lane: 'quick' });
  });
});

describe('the sliding window of removals', () => {
  it('does not count what an approval applied: an admin weighed those already', async () => {
    const integration = await okta();
    const runs = new RunRepository(db);
    const record = async (approves: string | null) => {
      const { run } = await runs.trigger(integration.id, 'manual', false, { mode: 'full', lane: 'full' });
      if (approves) await db.updateTable('runs').set({ approves_run_id: approves }).where('id', '=', run.id).execute();
      await db
        .insertInto('run_changes')
        .values({ run_id: run.id, kind: 'user.deprovisioned', external_id: `00u${run.id.slice(0, 6)}`, subject: 'x', detail: null, state: 'applied', tenant_id: integration.tenantId, integration_id: integration.id })
        .execute();
      await runs.claim(run.id);
      await runs.finish(run.id, { status: 'succeeded', counts: {} as never, stats: {} });
      return run.id;
    };
    const first = await record(null);
    await record(first);
    expect(await runs.recentRemovals(integration.id, 3_600_000)).toMatchObject({ deprovisions: 1 });
  });

  it('counts each removal once, and only while it stands: of users, groups and memberships alike', async () => {
    const integration = await okta();
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(integration.id, 'manual', false, { mode: 'full', lane: 'full' });
    const scope = { tenantId: integration.tenantId, integrationId: integration.id, runId: run.id };
    // Now: users back (active again) and kept, group back, membership back; the others stay removed.
    await applyPlan(db, scope, { ...emptyPlan(), usersCreated: [{ ...user('back'), adopts: null }], groupsCreated: [group('gBack')],
      membershipsAdded: [{ groupExternalId: 'gBack', userExternalId: 'back', groupName: 'group-gBack', userName: 'back@example.com' }] }, { deprovisionMode: 'suspend' });
    const removal = (kind: string, externalId: string, detail: Record<string, string> | null = null) => ({
      run_id: run.id, kind, external_id: externalId, subject: 'x', detail: detail && JSON.stringify(detail), state: 'applied', tenant_id: integration.tenantId, integration_id: integration.id,
    });
    await db.insertInto('run_changes').values([
      // Each twice: a subject removed, back, and removed again in the hour counts once while it stands.
      removal('user.deprovisioned', 'back'), removal('user.deprovisioned', 'back'),
      removal('user.deprovisioned', 'gone'), removal('user.deprovisioned', 'gone'),
      removal('group.deleted', 'gBack'), removal('group.deleted', 'gGone'), removal('group.deleted', 'gGone'),
      removal('membership.removed', 'gBack/back', { group: 'gBack', user: 'back' }),
      removal('membership.removed', 'gGone/back', { group: 'gGone', user: 'back' }),
      removal('membership.removed', 'gGone/back', { group: 'gGone', user: 'back' }),
    ] as never).execute();
    expect(await runs.recentRemovals(integration.id, 3_600_000)).toEqual({ windowMs: 3_600_000, deprovisions: 1, groupDeletions: 1, membershipRemovals: 1 });
  });
});

describe('what a sync by hand asks for', () => {
  it('reads what changed by default, everything with full, named users with users; refuses contradictions', () => {
    expect(syncWish({})).toEqual({ kind: 'auto' });
    expect(syncWish({ full: true })).toEqual({ kind: 'full' });
    expect(syncWish({ dryRun: true })).toEqual({ kind: 'full' });
    expect(syncWish({ users: ['jane@example.com', ' jane@example.com'] })).toEqual({ kind: 'targeted', subjects: { logins: ['jane@example.com'] } });
    expect(() => syncWish({ users: ['a@b.c'], full: true })).toThrow(UserError);
    expect(() => syncWish({ users: ['a@b.c'], dryRun: true })).toThrow(UserError);
    expect(() => syncWish({ users: [' '] })).toThrow(/takes logins/);
  });
});
