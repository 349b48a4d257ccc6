import { Kysely, type LogEvent, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan, describePlan, recordPlan } from '../../src/apply/apply-plan.js';
import { emptyLocalState } from '../../src/core/model.js';
import { plan } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import type { Database } from '../../src/db/schema.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
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
let url: string;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb, url } = created);
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

describe('a batch write into a large tenant', () => {
  /*
   * A batch names a few thousand accounts by IdP id. Joined plainly, the planner hashes every
   * account of the integration for each batch whenever a scan looks cheaper than the probes
   * (it did up to 60k accounts in the W100k bench: a third of the membership time of an
   * initial sync, and quadratic over it). The statements probe per row instead, whatever the
   * statistics say: this pins the plans at a size where a scan would be chosen.
   */
  it('looks each account up by its IdP id, never scanning all of the integration accounts', { timeout: 60_000 }, async () => {
    const slug = uniqueSlug('probe');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false });
    const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false);
    const scope = { tenantId: tenant.id, integrationId: integration.id, runId: run.id };
    const accounts = 20_000;
    await sql`
      with people as (
        insert into users (user_name) select 'p' || n || '@example.com' from generate_series(1, ${accounts}::int) n returning id, user_name
      )
      insert into accounts (tenant_id, user_id, integration_id, external_id, user_name, active, idp_status, attributes, fingerprint)
      select ${tenant.id}::uuid, id, ${integration.id}::uuid, '00u' || user_name, user_name, true, 'ACTIVE', '{}'::jsonb, 'f' from people
    `.execute(db);
    await sql`insert into groups (tenant_id, integration_id, external_id, name, attributes, fingerprint) values (${tenant.id}::uuid, ${integration.id}::uuid, '00gA', 'A', '{}'::jsonb, 'f')`.execute(db);
    await sql`analyze users, accounts, groups, group_memberships, locks`.execute(db);

    // The statements as the repositories send them, captured on their way and rolled back.
    const statements: LogEvent['query'][] = [];
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const logging = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (e) => void statements.push(e.query) });
    try {
      const batch = Array.from({ length: 2_000 }, (_, i) => ({ groupExternalId: '00gA', userExternalId: `00up${i * 7 + 1}@example.com`, userName: `p${i * 7 + 1}@example.com`, groupName: 'A' }));
      const updates = batch.map((m) => user(m.userExternalId, { userName: `renamed-${m.userName}` }));
      const changes = batch.map((m) => ({ kind: 'user.updated', externalId: m.userExternalId, subject: m.userName, detail: null }));
      const sent = {
        addMemberships: (r: DirectoryRepository) => r.addMemberships(scope, batch),
        removeMemberships: (r: DirectoryRepository) => r.removeMemberships(scope, batch),
        updateUsers: (r: DirectoryRepository) => r.updateUsers(scope, updates),
        suspendUsers: (r: DirectoryRepository) => r.suspendUsers(scope, updates.map((u) => ({ externalId: u.externalId, reason: 'idp-status', user: null }))),
        removeAccess: (r: DirectoryRepository) => r.removeAccess(scope, updates.map((u) => ({ externalId: u.externalId, reason: 'idp-status' })), false),
        recordApplied: (_: DirectoryRepository, runs: RunRepository) => runs.recordApplied(scope, changes),
        describeSubjects: (_: DirectoryRepository, runs: RunRepository) => runs.describeSubjects(integration.id, changes),
      };
      const plans = new Map<string, string>();
      for (const [name, send] of Object.entries(sent)) {
        statements.length = 0;
        await logging
          .transaction()
          .execute(async (trx) => {
            await send(new DirectoryRepository(trx as unknown as Db), new RunRepository(trx as unknown as Db));
            throw new Error('rolled back');
          })
          .catch((error: unknown) => expect(String(error)).toContain('rolled back'));
        for (const q of statements.filter((q) => /\baccounts\b/.test(q.sql))) {
          const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`explain ${q.sql}`, [...q.parameters]);
          plans.set(`${name}: ${q.sql.trim().slice(0, 60)}`, rows.map((r) => r['QUERY PLAN']).join('\n'));
        }
      }
      expect([...plans.keys()].map((k) => k.split(':')[0])).toEqual(expect.arrayContaining(Object.keys(sent)));
      for (const [statement, plan] of plans) {
        // Every read of accounts is a probe of the (integration, IdP id) key, never a scan of the integration's.
        const reads = [...plan.matchAll(/(\S[^\n]*) on accounts \w+[^\n]*\n\s+(?:->\s+)?(Index Cond: [^\n]*)?/g)]
          .filter((m) => !/^(->\s+)?(Update|Delete|Insert)\b/.test(m[1]!));
        expect(reads.length, `${statement}\n${plan}`).toBeGreaterThan(0);
        for (const [, node, cond] of reads) {
          expect(node, `${statement}\n${plan}`).toMatch(/Index (Only )?Scan using accounts_integration_external_key$/);
          expect(cond, `${statement}\n${plan}`).toMatch(/external_id = /);
        }
      }
    } finally {
      await logging.destroy();
    }
  });
});

function withoutIds(detail: unknown): unknown {
  if (detail === null || typeof detail !== 'object') return detail;
  const { ids: _ids, ...rest } = detail as Record<string, unknown>;
  return rest;
}

describe('attribute changes that come with a deprovision or a reprovision', () => {
  /*
   * SPEC "Events": every applied change is an event. An IdP edit that suspends a user and
   * changes their email applies as one operation (the tenant never shows it half done), and
   * records the update as a user.updated of its own, with each field's previous and new value,
   * before the deprovision, in the same transaction; a dry run records the same two.
   */
  it('are a user.updated of their own, in the deprovision\'s transaction, counted as an update', async () => {
    const slug = uniqueSlug('depupd');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false });
    const runs = new RunRepository(db);
    const policy = { deprovisionMode: 'suspend' as const };
    const scopeOf = async (dryRun = false) => ({ tenantId: tenant.id, integrationId: integration.id, runId: (await runs.trigger(integration.id, 'manual', dryRun)).run.id });
    const ann = user('00u1', { userName: 'ann@example.com', email: 'ann@example.com' });
    await applyPlan(db, await scopeOf(), plan(emptyLocalState(), snapshot([ann], []), policy), policy);

    const suspended = user('00u1', { userName: 'ann@example.com', email: 'ann.new@example.com', active: false });
    const planned = plan(await new DirectoryRepository(db).loadLocalState(integration.id, tenant.id), snapshot([suspended], []), policy);
    expect(planned.usersDeprovisioned.map((d) => d.update?.changed.includes('email'))).toEqual([true]);
    expect(planned.usersUpdated).toEqual([]);
    // Runs of one integration coalesce while queued: each step's rows are those after the step before's.
    let seen = '0';
    const rowsOf = async (runId: string) => {
      const rows = await db.selectFrom('run_changes').select(['id', 'kind', 'detail', 'state', 'txid']).where('run_id', '=', runId).where('id', '>', seen).orderBy('id').execute();
      seen = rows.at(-1)?.id ?? seen;
      return rows;
    };
    await rowsOf((await scopeOf()).runId);

    const dry = await scopeOf(true);
    await recordPlan(db, dry, planned, policy, 'planned');
    const dryRows = await rowsOf(dry.runId);
    expect(dryRows.map((r) => [r.kind, r.state])).toEqual([['user.updated', 'planned'], ['user.deprovisioned', 'planned']]);
    expect(dryRows[0]!.detail).toMatchObject({ changed: expect.arrayContaining(['email']), changes: { email: { previous: 'ann@example.com', new: 'ann.new@example.com' } } });

    const scope = await scopeOf();
    const progress: [string, number][] = [];
    const result = await applyPlan(db, scope, planned, policy, { afterBatch: (kind, applied) => void progress.push([kind, applied]) });
    expect(result.counts).toMatchObject({ usersUpdated: 1, usersDeprovisioned: 1 });
    // Progress hears the update too, with the deprovision's batch.
    expect(progress).toEqual([['usersDeprovisioned', 1], ['usersUpdated', 1]]);
    const rows = await rowsOf(scope.runId);
    expect(rows.map((r) => [r.kind, r.state])).toEqual([['user.updated', 'applied'], ['user.deprovisioned', 'applied']]);
    expect(rows[0]!.txid).toBe(rows[1]!.txid);
    expect(rows[0]!.detail).toMatchObject({ changed: expect.arrayContaining(['email']), changes: { email: { previous: 'ann@example.com', new: 'ann.new@example.com' } } });
    // Both describe the account after the edit: the new email, inactive and locked.
    for (const row of rows) {
      expect((row.detail as { of: { account: unknown } }).of.account).toMatchObject({ email: 'ann.new@example.com', active: false });
      expect((row.detail as { ids: unknown }).ids).toMatchObject({ active: false, locked: true });
    }
    const account = await db.selectFrom('accounts').select(['email', 'active']).where('integration_id', '=', integration.id).where('external_id', '=', '00u1').executeTakeFirstOrThrow();
    expect(account).toEqual({ email: 'ann.new@example.com', active: false });

    // Reactivated with another email: the update, then the reprovision, in one transaction.
    const back = user('00u1', { userName: 'ann@example.com', email: 'ann.back@example.com' });
    const again = plan(await new DirectoryRepository(db).loadLocalState(integration.id, tenant.id), snapshot([back], []), policy);
    const later = await scopeOf();
    const reprovisioned = await applyPlan(db, later, again, policy);
    expect(reprovisioned.counts).toMatchObject({ usersUpdated: 1, usersReprovisioned: 1 });
    const backRows = await rowsOf(later.runId);
    expect(backRows.map((r) => r.kind)).toEqual(['user.updated', 'user.reprovisioned']);
    expect(backRows[0]!.txid).toBe(backRows[1]!.txid);
    expect(backRows[0]!.detail).toMatchObject({ changes: { email: { previous: 'ann.new@example.com', new: 'ann.back@example.com' } } });
    for (const row of backRows) expect((row.detail as { ids: unknown }).ids).toMatchObject({ active: true, locked: false });
  });
});
