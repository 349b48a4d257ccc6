import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan, describePlan } from '../../src/apply/apply-plan.js';
import { emptyLocalState } from '../../src/core/model.js';
import { plan } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { group, snapshot, user } from '../support/builders.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';

/**
 * Bulk writes record their own change-log rows in the statement that writes them (created
 * users, added memberships: most of an initial sync's changes). Those rows must be exactly
 * what describePlan says applying the plan records (the one description of a change), plus
 * the ids the write produced.
 */

let db: Db;
let dropDb: () => Promise<void>;
let config: ReturnType<typeof testConfig>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => dropDb());

describe('change-log rows a write records itself', () => {
  it('equal the plan as describePlan records it, with the ids of what was written', async () => {
    const slug = uniqueSlug('record');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false });
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(integration.id, 'manual', false);
    const scope = { tenantId: tenant.id, integrationId: integration.id, runId: run.id };
    // Names with quotes, a slash and non-ASCII: the SQL that builds the rows must keep them whole.
    const users = [user('00u1', { userName: 'ann@example.com' }), user('00u/2', { userName: 'Zoë "Z" O\'Neil' }), user('00u3', { userName: 'carl@example.com', email: null })];
    const groups = [group('00g1', { name: 'Engineering' }), group('00g2', { name: 'Sales / "EMEA"' })];
    const planned = plan(emptyLocalState(), snapshot(users, groups, { '00g1': ['00u1', '00u/2'], '00g2': ['00u/2', '00u3'] }), { deprovisionMode: 'suspend' });
    expect(planned.usersCreated).toHaveLength(3);
    expect(planned.membershipsAdded).toHaveLength(4);

    const result = await applyPlan(db, scope, planned, { deprovisionMode: 'suspend' }, { batchSize: 2 });
    expect(result.counts.usersCreated).toBe(3);
    expect(result.counts.membershipsAdded).toBe(4);

    const expected = [...describePlan(planned, { deprovisionMode: 'suspend' }, 2)].flatMap((b) => b.changes);
    // The rows as stored (listChanges shows a run's changes without their events' `of` and `ids`).
    const rows = await db.selectFrom('run_changes').select(['kind', 'external_id', 'subject', 'detail', 'state']).where('run_id', '=', run.id).orderBy('id').execute();
    expect(rows.every((r) => r.state === 'applied')).toBe(true);
    const recorded = rows.map((r) => ({ kind: r.kind, externalId: r.external_id, subject: r.subject, detail: r.detail }));
    expect(recorded.map(({ kind, externalId, subject, detail }) => ({ kind, externalId, subject, detail: withoutIds(detail) }))).toEqual(
      expected.map(({ kind, externalId, subject, detail }) => ({ kind, externalId, subject, detail })),
    );

    const accounts = await db.selectFrom('accounts').select(['id', 'external_id', 'user_id', 'active']).where('integration_id', '=', integration.id).execute();
    const account = new Map(accounts.map((a) => [a.external_id, a]));
    const groupRows = await db.selectFrom('groups').select(['id', 'external_id']).where('integration_id', '=', integration.id).execute();
    const groupId = new Map(groupRows.map((g) => [g.external_id, g.id]));
    for (const change of recorded) {
      const ids = (change.detail as { ids?: Record<string, unknown> }).ids;
      if (change.kind === 'group.created') expect(ids).toEqual({ groupId: groupId.get(change.externalId) });
      if (change.kind === 'user.created') {
        const a = account.get(change.externalId)!;
        expect(ids).toEqual({ accountId: a.id, personId: a.user_id, active: true, locked: false });
      }
      if (change.kind === 'membership.added') {
        const { group: g, user: u } = change.detail as { group: string; user: string };
        const a = account.get(u)!;
        expect(ids).toEqual({ groupId: groupId.get(g), accountId: a.id, personId: a.user_id });
      }
    }
  });
});

describe('a grant refused while applying', () => {
  it('is neither written nor recorded, and is one warning, while the rest of its batch applies', async () => {
    const slug = uniqueSlug('refuse');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const service = new IntegrationService(db, config);
    const mine = (await service.create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false })).integration;
    const other = (await service.create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:8', token: 'unused', verify: false })).integration;
    const runs = new RunRepository(db);
    const policy = { deprovisionMode: 'suspend' as const };
    // Planned while nobody had the login; the other enabled integration takes it before this run applies.
    const planned = plan(emptyLocalState(), snapshot([user('00uA', { userName: 'dup@example.com' }), user('00uB', { userName: 'solo@example.com' })], []), policy);
    const theirs = plan(emptyLocalState(), snapshot([user('00uX', { userName: 'DUP@example.com' })], []), policy);
    const otherRun = (await runs.trigger(other.id, 'manual', false)).run;
    await applyPlan(db, { tenantId: tenant.id, integrationId: other.id, runId: otherRun.id }, theirs, policy);

    const { run } = await runs.trigger(mine.id, 'manual', false);
    const result = await applyPlan(db, { tenantId: tenant.id, integrationId: mine.id, runId: run.id }, planned, policy);
    expect(result.counts.usersCreated).toBe(1);
    expect(result.skipped).toEqual([{ kind: 'user', externalId: '00uA', subject: 'dup@example.com', reason: expect.stringContaining('another enabled integration of this tenant took an account with this userName') }]);
    const rows = await db.selectFrom('run_changes').select(['kind', 'external_id']).where('run_id', '=', run.id).execute();
    expect(rows).toEqual([{ kind: 'user.created', external_id: '00uB' }]);
    const accounts = await db.selectFrom('accounts').select('external_id').where('integration_id', '=', mine.id).execute();
    expect(accounts.map((a) => a.external_id)).toEqual(['00uB']);
  });
});

function withoutIds(detail: unknown): unknown {
  if (detail === null || typeof detail !== 'object') return detail;
  const { ids: _ids, ...rest } = detail as Record<string, unknown>;
  return rest;
}
