import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply-plan.js';
import type { DirectoryGroup, DirectoryUser, SkippedRecord } from '../../src/core/model.js';
import { type Plan, PLAN_KINDS, emptyPlan, plan, zeroCounts } from '../../src/core/plan.js';
import { DestructiveSet } from '../../src/core/approvals.js';
import { STATISTICS_REFRESH, StagedReadLostError, applyStaged, decideStaged } from '../../src/runs/staged-run.js';
import type { Policy } from '../../src/core/policy.js';
import { RecordError, SnapshotBuilder, type SnapshotSink, completeSnapshot } from '../../src/core/snapshot.js';
import { type Db, createDb } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { StagingRepository } from '../../src/db/staging.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { joinPlans, planStaged } from '../../src/runs/staged-plan.js';
import { StagedSnapshot } from '../../src/runs/staged-read.js';
import { group, user } from '../support/builders.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';

/**
 * Issue 19: a full read of a large directory is staged in Postgres and planned chunk by chunk
 * (src/runs/staged-read.ts, src/runs/staged-plan.ts). Whatever the IdP sends and whatever the
 * tenant holds, that must be the plan the in-memory path makes (SnapshotBuilder, completeSnapshot,
 * plan): the same operations, compared as sets, with chunks far smaller than the directory.
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

// Ids whose orders differ between code units, code points and collations; logins that clash
// once case-folded ('ann', 'ANN'; 'İlk' and 'ilk').
const USER_IDS = ['00uA', '00ua', '00u/b', '00uB', 'é1', 'e2', 'Ω3', 'z4', '00u5', '00u6', '0Z7', 'a8'];
const LOGINS = ['ann@x.io', 'ANN@x.io', 'bob@x.io', 'İlk@x.io', 'ilk@x.io', 'carl@x.io', 'dee@x.io', 'eve@x.io', 'fay@x.io', 'gus@x.io', 'hal@x.io', 'ivy@x.io'];
const GROUP_IDS = ['00gA', '00ga', 'g/1', 'ğ2'];
const POLICIES: Policy[] = [{ deprovisionMode: 'suspend' }, { deprovisionMode: 'remove-access' }, { deprovisionMode: 'delete' }];

/** One record as an IdP page would hold it: the mapping may find it unreadable (RecordError). */
type RawUser = { id: string; login: string | undefined; active: boolean; given: string; bad?: 'mapping' | 'no-id' | 'nul' };
type RawGroup = { id: string; name: string; bad?: 'mapping' };
type ReadStep = { kind: 'user'; raw: RawUser } | { kind: 'group'; raw: RawGroup } | { kind: 'member'; group: string; user: string } | { kind: 'unread'; group: string };

/** Now and then (one record in ten), one of these. */
const rarely = <T>(...values: T[]) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 9 }, { arbitrary: fc.constantFrom(...values), weight: 1 });
const rawUser: fc.Arbitrary<RawUser> = fc.record({
  id: fc.constantFrom(...USER_IDS, 'out1', 'out2'),
  // Mostly the id's own login; now and then one that may clash with another's.
  login: rarely(...LOGINS),
  active: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  given: fc.constantFrom('A', 'B'),
  bad: rarely<RawUser['bad']>('mapping', 'no-id', 'nul'),
});
const rawGroup: fc.Arbitrary<RawGroup> = fc.record({ id: fc.constantFrom(...GROUP_IDS), name: fc.constantFrom('Eng', 'Sales', 'Ops'), bad: rarely<RawGroup['bad']>('mapping') });
/** A directory as its records: users and groups as pages list them (some twice), members. */
const directory = fc.record({
  users: fc.array(rawUser, { minLength: 4, maxLength: 16, size: 'max' }),
  groups: fc.array(rawGroup, { minLength: 2, maxLength: 6 }),
  members: fc.array(fc.tuple(fc.constantFrom(...GROUP_IDS), fc.constantFrom(...USER_IDS, 'out1')), { minLength: 10, maxLength: 40, size: 'max' }),
});
const readSteps: fc.Arbitrary<ReadStep[]> = fc
  .tuple(directory, fc.oneof({ arbitrary: fc.constant([] as string[]), weight: 2 }, { arbitrary: fc.subarray(GROUP_IDS, { maxLength: 2 }), weight: 1 }))
  .map(([d, unread]) => [
    ...d.users.map((raw) => ({ kind: 'user' as const, raw })),
    ...d.groups.map((raw) => ({ kind: 'group' as const, raw })),
    ...unread.map((g) => ({ kind: 'unread' as const, group: g })),
    // A connector does not list the members of a group it did not re-read.
    ...d.members.filter(([g]) => !unread.includes(g)).map(([g, u]) => ({ kind: 'member' as const, group: g, user: u })),
  ]);

function mapUser(raw: RawUser): DirectoryUser {
  if (raw.bad === 'mapping') throw new RecordError(`IdP user ${raw.id} has no profile.login`, { externalId: raw.id, subject: raw.id, active: raw.active });
  if (raw.bad === 'no-id') throw new RecordError('an IdP user has no id', { externalId: null, subject: raw.login ?? raw.id });
  const login = raw.login ?? `user${USER_IDS.indexOf(raw.id)}${raw.id.length}@x.io`;
  return user(raw.id, { userName: raw.bad === 'nul' ? `${login}\0` : login, active: raw.active, givenName: raw.given });
}

function mapGroup(raw: RawGroup): DirectoryGroup {
  if (raw.bad === 'mapping') throw new RecordError(`IdP group ${raw.id} has no name`, { externalId: raw.id, subject: raw.id });
  return group(raw.id, { name: raw.name });
}

function feed(sink: SnapshotSink, steps: readonly ReadStep[]): void {
  for (const step of steps) {
    if (step.kind === 'user') sink.addUserFrom(step.raw, mapUser);
    else if (step.kind === 'group') sink.addGroupFrom(step.raw, mapGroup);
    else if (step.kind === 'member') sink.addMember(step.group, step.user);
    else if (sink.group(step.group)) sink.markMembersUnread(step.group);
  }
}

/** A value as text with its keys sorted: equal for equal content, however it was built (a staged user went through JSON). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/** A plan as sorted texts per kind: operations compared as sets. */
function asSets(p: Plan): Record<string, string[]> {
  const sets: Record<string, string[]> = {};
  for (const kind of [...PLAN_KINDS, 'skipped' as const]) sets[kind] = (p[kind] as readonly unknown[]).map(canonical).sort();
  return sets;
}

/** An integration of a fresh tenant, and a run of it to record applied plans on. */
async function integrationOf(tenant: string): Promise<{ integrationId: string; runId: string }> {
  const { integration } = await new IntegrationService(db, config).create({ tenant, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false });
  const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false);
  return { integrationId: integration.id, runId: run.id };
}

/** Applies what the in-memory path plans for this read (how the tenant's state is set up). */
async function applyRead(scope: { tenantId: string; integrationId: string; runId: string }, steps: readonly ReadStep[], policy: Policy): Promise<void> {
  const builder = new SnapshotBuilder();
  feed(builder, steps.filter((s) => s.kind !== 'unread'));
  const local = await new DirectoryRepository(db).loadLocalState(scope.integrationId, scope.tenantId);
  await applyPlan(db, scope, plan(local, builder.build(), policy), policy);
}

describe('a staged read planned in chunks', () => {
  it('plans what the in-memory path plans, whatever was read and whatever the tenant holds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          earlier: fc.array(readSteps, { minLength: 1, maxLength: 2 }),
          other: readSteps,
          otherEnabled: fc.boolean(),
          read: readSteps,
          policy: fc.constantFrom(...POLICIES),
          chunk: fc.integer({ min: 1, max: 5 }),
        }),
        async ({ earlier, other, otherEnabled, read, policy, chunk }) => {
          const slug = uniqueSlug('staged');
          const tenant = (await new TenantRepository(db).create(slug, slug))!;
          const a = await integrationOf(slug);
          const b = await integrationOf(slug);
          // The tenant's state: earlier reads of this integration (deprovisions and locks
          // among them), and another integration's accounts (to adopt, or in conflict).
          await applyRead({ tenantId: tenant.id, ...b }, other, { deprovisionMode: 'suspend' });
          for (const steps of earlier) await applyRead({ tenantId: tenant.id, ...a }, steps, policy);
          if (!otherEnabled) await new IntegrationService(db, config).setEnabled(b.integrationId, false);

          const local = await new DirectoryRepository(db).loadLocalState(a.integrationId, tenant.id);
          const builder = new SnapshotBuilder();
          feed(builder, read);
          const expected = plan(local, completeSnapshot(builder.build(), local), policy);

          const { run } = await new RunRepository(db).trigger(a.integrationId, 'manual', true);
          const readId = await new StagingRepository(db).begin(run.id);
          const staged = new StagedSnapshot(db, readId);
          feed(staged, read);
          const stagedRead = await staged.finish();
          const chunks = [];
          for await (const c of planStaged(db, stagedRead, { integrationId: a.integrationId, tenantId: tenant.id }, policy, chunk)) chunks.push(c.plan);
          await new StagingRepository(db).clear(readId);
          expect(asSets(joinPlans(chunks))).toEqual(asSets(expected));
        },
      ),
      { numRuns: Number(process.env.STAGED_PLAN_RUNS ?? 100) },
    );
  }, 120_000);

  it('stops a read whose writes fail: the connector, waiting for the queued writes before its next page, gets their error', async () => {
    const slug = uniqueSlug('staged');
    await new TenantRepository(db).create(slug, slug);
    const a = await integrationOf(slug);
    const readId = await new StagingRepository(db).begin(a.runId);
    // Postgres gone: nothing listens where this handle connects.
    const gone = createDb('postgres://postgres@127.0.0.1:1/gone', { max: 1 });
    const staged = new StagedSnapshot(gone, readId);
    for (let i = 0; i < 30_000; i++) staged.addUserFrom(i, (n) => user(`u${n}`));
    await expect(staged.ready()).rejects.toThrow(/ECONNREFUSED/);
    await expect(staged.finish()).rejects.toThrow(/ECONNREFUSED/);
    await gone.destroy();
    await new StagingRepository(db).clear(readId);
  });

  it('never takes a staged read that vanished (Postgres restarted) for an empty directory: the run must read again', async () => {
    const slug = uniqueSlug('staged');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const a = await integrationOf(slug);
    const scope = { tenantId: tenant.id, ...a };
    const policy: Policy = { deprovisionMode: 'suspend' };
    await applyRead(scope, [1, 2, 3].map((n) => ({ kind: 'user' as const, raw: { id: `u${n}`, login: `user${n}@x.io`, active: true, given: 'A' } })), policy);
    const staging = new StagingRepository(db);
    const readId = await staging.begin(a.runId);
    const staged = new StagedSnapshot(db, readId);
    for (const n of [1, 2, 3]) staged.addUserFrom(n, (i) => user(`u${i}`, { userName: `user${i}@x.io` }));
    const read = await staged.finish();
    const input = { read, scope, policy, thresholdPercent: 100, current: { activeUsers: 3, groups: 0, memberships: 0 }, pending: new DestructiveSet(), approved: new DestructiveSet() };
    expect(await decideStaged(db, input)).toMatchObject({ kind: 'plan', counts: { usersDeprovisioned: 0 } });
    // As after a crash of Postgres: unlogged tables come back empty.
    await staging.clear(readId);
    await expect(decideStaged(db, input)).rejects.toThrow(StagedReadLostError);
    await expect(applyStaged(db, scope, read, emptyPlan(), policy, { counts: zeroCounts(), skipped: [], stale: 0, staleSubjects: { userIds: [], groupIds: [] } })).rejects.toThrow(StagedReadLostError);
    expect((await new DirectoryRepository(db).loadLocalState(a.integrationId, tenant.id)).users.size).toBe(3);
  });

  it('applies chunks side by side as they are planned, and stops them all at the first failure: nothing applies after the error', async () => {
    const slug = uniqueSlug('staged');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const a = await integrationOf(slug);
    const scope = { tenantId: tenant.id, ...a };
    const policy: Policy = { deprovisionMode: 'suspend' };
    const staging = new StagingRepository(db);
    const stage = async (n: number) => {
      const staged = new StagedSnapshot(db, await staging.begin(a.runId));
      for (let i = 1; i <= n; i++) staged.addUserFrom(i, (k) => user(`u${String(k).padStart(3, '0')}`, { userName: `user${k}@x.io` }));
      staged.addGroupFrom(1, () => group('g1'));
      for (let i = 1; i <= n; i++) staged.addMember('g1', `u${String(i).padStart(3, '0')}`);
      return staged.finish();
    };
    const input = (read: Awaited<ReturnType<typeof stage>>) => ({ read, scope, policy, thresholdPercent: 100, current: { activeUsers: 0, groups: 0, memberships: 0 }, pending: new DestructiveSet(), approved: new DestructiveSet(), chunkSize: 1 });
    const accounts = async () => (await new DirectoryRepository(db).loadLocalState(a.integrationId, tenant.id)).users.size;

    // 30 chunks of one user: every user and membership applies, counted once, progress rising to the totals.
    let inFlight = 0;
    let mostInFlight = 0;
    const progress: number[] = [];
    const read = await stage(30);
    const decided = await decideStaged(db, {
      ...input(read),
      apply: {
        scope,
        options: {
          batchSize: 1,
          afterBatch: async (kind, applied) => {
            if (kind === 'usersCreated') progress.push(applied);
            mostInFlight = Math.max(mostInFlight, ++inFlight);
            await new Promise((resolve) => setTimeout(resolve, 5));
            inFlight -= 1;
          },
        },
      },
    });
    expect(decided).toMatchObject({ kind: 'plan', streamed: { counts: { usersCreated: 30, membershipsAdded: 30, groupsCreated: 1 } } });
    expect(await accounts()).toBe(30);
    expect(mostInFlight).toBe(2);
    expect(progress.at(-1)).toBe(30);
    expect([...progress].sort((x, y) => x - y)).toEqual(progress);

    // A batch's afterBatch throws (the run was interrupted) in the 5th chunk: the error is the
    // run's, and once it surfaced nothing more commits.
    const slug2 = uniqueSlug('staged');
    const tenant2 = (await new TenantRepository(db).create(slug2, slug2))!;
    const b = await integrationOf(slug2);
    const scope2 = { tenantId: tenant2.id, ...b };
    const read2 = await (async () => {
      const staged = new StagedSnapshot(db, await staging.begin(b.runId));
      for (let i = 1; i <= 30; i++) staged.addUserFrom(i, (k) => user(`u${String(k).padStart(3, '0')}`, { userName: `user${k}@y.io` }));
      return staged.finish();
    })();
    let batches = 0;
    await expect(
      decideStaged(db, {
        ...input(read2),
        scope: scope2,
        apply: {
          scope: scope2,
          options: {
            batchSize: 1,
            afterBatch: async () => {
              await new Promise((resolve) => setTimeout(resolve, 5));
              if (++batches === 5) throw new Error('interrupted');
            },
          },
        },
      }),
    ).rejects.toThrow('interrupted');
    const count = async () => (await new DirectoryRepository(db).loadLocalState(b.integrationId, tenant2.id)).users.size;
    const atError = await count();
    // The failing chunk's batch and at most the one other chunk's batch under way.
    expect(atError).toBeLessThanOrEqual(6);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await count()).toBe(atError);
  });

  // An initial sync starts from empty tables: each chunk's reads would be planned for those.
  it("refreshes Postgres's statistics between chunks of a large plan, not only once the run ends", async () => {
    const slug = uniqueSlug('staged');
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const a = await integrationOf(slug);
    const scope = { tenantId: tenant.id, ...a };
    const staged = new StagedSnapshot(db, await new StagingRepository(db).begin(a.runId));
    // Three chunks, one at a time: the refresh is due once the second has applied.
    const chunk = STATISTICS_REFRESH.min / 2;
    for (let i = 0; i < 3 * chunk; i++) staged.addUserFrom(i, (k) => user(`u${String(k).padStart(5, '0')}`, { userName: `stats${k}@x.io` }));
    const read = await staged.finish();
    // Autovacuum's own analyses count too: the refresh skips a table autovacuum is analyzing.
    const analyzed = async () => Number((await sql<{ n: string }>`select analyze_count + autoanalyze_count as n from pg_stat_user_tables where relname = 'accounts'`.execute(db)).rows[0]!.n);
    const before = await analyzed();
    const seen: Array<{ applied: number; analyzed: number }> = [];
    const policy: Policy = { deprovisionMode: 'suspend' };
    const decided = await decideStaged(db, {
      read, scope, policy, thresholdPercent: 100, current: { activeUsers: 0, groups: 0, memberships: 0 }, pending: new DestructiveSet(), approved: new DestructiveSet(),
      chunkSize: chunk,
      apply: { scope, concurrency: 1, options: { afterBatch: async (_kind, applied) => void seen.push({ applied, analyzed: await analyzed() }) } },
    });
    expect(decided).toMatchObject({ kind: 'plan', streamed: { counts: { usersCreated: 3 * chunk } } });
    // Refreshed before the third chunk applied.
    const third = seen.filter((s) => s.applied > 2 * chunk);
    expect(third.length).toBeGreaterThan(0);
    expect(third.every((s) => s.analyzed > before)).toBe(true);
    expect(seen.at(-1)?.applied).toBe(3 * chunk);
  });

  it('prunes rows a staged read left after it was cleared', async () => {
    const staging = new StagingRepository(db);
    const orphan = '00000000-0000-4000-8000-000000000001';
    await staging.stageMembers(orphan, ['g1'], ['u1']);
    await staging.stageUsers(orphan, [user('u1')]);
    await staging.prune();
    expect(await staging.membersIn(orphan, { after: null, upTo: null })).toEqual([]);
    expect(await staging.countUsers(orphan)).toBe(0);
  });

  it('stages a read of many pages and keeps each record\'s last version', async () => {
    const slug = uniqueSlug('staged');
    await new TenantRepository(db).create(slug, slug);
    const a = await integrationOf(slug);
    const readId = await new StagingRepository(db).begin(a.runId);
    const staged = new StagedSnapshot(db, readId);
    // More than one write's worth, each user twice: the second version is the one kept.
    for (let i = 0; i < 4_500; i++) staged.addUserFrom(i, (n) => user(`u${n}`, { givenName: 'first' }));
    for (let i = 0; i < 4_500; i++) staged.addUserFrom(i, (n) => user(`u${n}`, { givenName: 'second' }));
    // One read well then badly: skipped, and no longer staged.
    staged.addUserFrom(7, (n) => {
      throw new RecordError(`IdP user u${n} has no profile.login`, { externalId: `u${n}`, subject: `u${n}`, active: true });
    });
    const read = await staged.finish();
    expect(read.users).toBe(4_499);
    expect(read.skipped.map((r: SkippedRecord) => r.externalId)).toEqual(['u7']);
    const users = await new StagingRepository(db).usersIn(readId, { after: null, upTo: null });
    expect(new Set(users.map((u) => u.givenName))).toEqual(new Set(['second']));
    await new StagingRepository(db).clear(readId);
    expect(await new StagingRepository(db).countUsers(readId)).toBe(0);
  });
});
