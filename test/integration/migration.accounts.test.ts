import { randomBytes, randomUUID } from 'node:crypto';
import { type Kysely, Migrator, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { type Db, createDb, ensureDatabase } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { changeState } from '../../src/runs/change-state.js';

/**
 * Issue 13: "A migration that moves an existing database to the new model without losing any
 * row, attribute, membership, lock or run (test it on a database filled by the current schema)".
 *
 * A database of this file's own is migrated only up to the last migration of the old model,
 * filled with raw SQL in the old shape (people keyed by lower(user_name), `tenant_access`,
 * memberships on people, locks keyed by (tenant, person), `run_changes.applied`), then moved
 * to the new model by 2026-11-29T0000-accounts and compared row by row with what the old rows
 * said, through the tables and through the app's own read paths.
 */

const OLD = '2026-11-25T0500-credential-kind';
const ACCOUNTS = '2026-11-29T0000-accounts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/** A database of its own, named under the run's template so global teardown drops it if a test dies. */
async function oldModelDatabase(): Promise<{ db: Db; raw: AnyDb; migrator: Migrator; drop: () => Promise<void> }> {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DIRSYNC_TEST_DB_NAME}_mig_${randomBytes(4).toString('hex')}`;
  await ensureDatabase(url.toString());
  const db = createDb(url.toString(), { max: 2 });
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateTo(OLD);
  if (error) throw error;
  expect(results?.every((r) => r.status === 'Success')).toBe(true);
  return {
    db,
    raw: db as unknown as AnyDb,
    migrator,
    drop: async () => {
      await db.destroy();
      const admin = new URL(url);
      admin.pathname = '/postgres';
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`drop database if exists "${url.pathname.slice(1)}" with (force)`);
      await c.end();
    },
  };
}

async function rows<T = Record<string, unknown>>(raw: AnyDb, query: string): Promise<T[]> {
  return (await sql<T>`${sql.raw(query)}`.execute(raw)).rows;
}

async function applied(raw: AnyDb): Promise<string[]> {
  return (await rows<{ name: string }>(raw, 'select name from kysely_migration order by name')).map((r) => r.name);
}

/** Constraints and indexes, by name and definition: what a down migration must give back. */
async function schemaShape(raw: AnyDb): Promise<string[]> {
  const cons = await rows<{ d: string }>(
    raw,
    `select c.conrelid::regclass || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid) as d
     from pg_constraint c join pg_namespace n on n.oid = c.connamespace
     where n.nspname = 'public' and c.conrelid <> 0 and c.conrelid::regclass::text not like 'kysely%'`,
  );
  const idx = await rows<{ d: string }>(
    raw,
    `select indexdef as d from pg_indexes where schemaname = 'public' and tablename not like 'kysely%'`,
  );
  const cols = await rows<{ d: string }>(
    raw,
    `select table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' ||
            coalesce(column_default, '') || ' ' || coalesce(generation_expression, '') as d
     from information_schema.columns where table_schema = 'public' and table_name not like 'kysely%'`,
  );
  // A sequence keeps the name it was created with (a bigserial added while the table was called
  // accounts is accounts_id_seq): harmless, so sequence names are left out.
  return [...cons, ...idx, ...cols].map((r) => r.d.replace(/nextval\('[^']+'::regclass\)/g, 'nextval(sequence)')).sort();
}

const NFC = 'jos\u00e9@example.com';
const NFD = 'jose\u0301@example.com';

/** Fixed ids, so the expectations below can name the rows. */
const T = { a: randomUUID(), b: randomUUID() };
const I = { aOkta: randomUUID(), aAk: randomUUID(), bAk: randomUUID(), gone: randomUUID() };
const P = {
  alice: randomUUID(), // 'Alice.Smith@' in tenant A (Okta), 'alice.smith@' in tenant B (authentik): one person, two accounts
  joseNfc: randomUUID(), // NFC login, the older: kept by the merge
  joseNfd: randomUUID(), // NFD login of the same name: merged into joseNfc
  bob: randomUUID(), // suspended in tenant A (Okta, suspend mode): inactive account, lock, memberships kept
  carol: randomUUID(), // deleted by delete mode: no users row any more, only her lock
  dave: randomUUID(), // access in A (authentik); access in B removed (remove-access): lock without account
  erin: randomUUID(), // legacy lock (before locks named the IdP id) in B, access only in A
  frank: randomUUID(), // lock whose integration was deleted since (integration_id set null)
};
const G = { eng: randomUUID(), admins: randomUUID(), staff: randomUUID(), everyone: randomUUID(), ops: randomUUID(), empty: randomUUID() };
const R = {
  applied: randomUUID(),
  dry: randomUUID(),
  approvedHeld: randomUUID(),
  approval: randomUUID(),
  held: randomUUID(),
  failed: randomUUID(),
  queued: randomUUID(),
};

/** Fills the old model as the pre-accounts code wrote it. */
async function fillOldModel(raw: AnyDb): Promise<void> {
  const exec = (q: string) => sql.raw(q).execute(raw);
  await exec(`insert into tenants (id, slug, name) values ('${T.a}', 'acme', 'Acme'), ('${T.b}', 'beta', 'Beta')`);
  await exec(`
    insert into integrations (id, tenant_id, provider, base_url, credentials, okta_app_id, authentik_app, deprovision_mode,
      threshold_percent, schedule_every_ms, schedule_cron, enabled, webhook_secret_hash, credential_kind, okta_client_id,
      webhook_secret_previous_hash, webhook_secret_previous_expires_at) values
    ('${I.aOkta}', '${T.a}', 'okta', 'https://acme.okta.example', '\\x01020304', '0oaAcme', null, 'suspend', 10, 600000, null, true,
      'hash-a', 'okta-private-key', '0oaClient', 'hash-prev', '2026-12-01T00:00:00Z'),
    ('${I.aAk}', '${T.a}', 'authentik', 'https://ak.acme.example', '\\x05', null, 'acme-app', 'delete', null, null, '*/5 * * * *', true,
      'hash-b', 'token', null, null, null),
    ('${I.bAk}', '${T.b}', 'authentik', 'https://ak.beta.example', '\\x06', null, 'beta-app', 'remove-access', 25, null, null, false,
      'hash-c', 'token', null, null, null),
    ('${I.gone}', '${T.a}', 'okta', 'https://gone.okta.example', '\\x07', '0oaGone', null, 'suspend', null, null, null, true,
      'hash-d', 'token', null, null, null)`);
  await exec(`
    insert into users (id, user_name, created_at, updated_at) values
    ('${P.alice}', 'Alice.Smith@example.com', '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'),
    ('${P.joseNfc}', '${NFC}', '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z'),
    ('${P.joseNfd}', '${NFD}', '2026-01-03T00:00:00Z', '2026-03-03T00:00:00Z'),
    ('${P.bob}', 'bob@example.com', '2026-01-04T00:00:00Z', '2026-01-04T00:00:00Z'),
    ('${P.dave}', 'dave@example.com', '2026-01-05T00:00:00Z', '2026-01-05T00:00:00Z'),
    ('${P.erin}', 'erin@example.com', '2026-01-06T00:00:00Z', '2026-01-06T00:00:00Z'),
    ('${P.frank}', 'frank@example.com', '2026-01-07T00:00:00Z', '2026-01-07T00:00:00Z')`);
  await exec(`
    insert into tenant_access (tenant_id, user_id, integration_id, external_id, user_name, email, given_name, family_name,
      display_name, active, idp_status, attributes, fingerprint, deprovisioned_at, created_at, updated_at) values
    ('${T.a}', '${P.alice}', '${I.aOkta}', '00uAlice', 'Alice.Smith@example.com', 'alice@acme.example', 'Alice', 'Smith',
      'Alice Smith', true, 'ACTIVE', '{"department": "R&D", "costCenter": 42, "tags": ["a", "b"]}', 'fp-alice-a', null,
      '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'),
    ('${T.b}', '${P.alice}', '${I.bAk}', 'ak-alice', 'alice.smith@example.com', 'alice@beta.example', 'Alice', null,
      null, true, 'active', '{"is_superuser": false}', 'fp-alice-b', null, '2026-01-10T00:00:00Z', '2026-01-11T00:00:00Z'),
    ('${T.a}', '${P.joseNfc}', '${I.aOkta}', '00uJose', '${NFC}', 'jose@acme.example', 'Jos\u00e9', 'Garc\u00eda',
      'Jos\u00e9 Garc\u00eda', true, 'ACTIVE', '{"locale": "es"}', 'fp-jose-a', null, '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z'),
    ('${T.b}', '${P.joseNfd}', '${I.bAk}', 'ak-jose', '${NFD}', 'jose@beta.example', 'Jose\u0301', null,
      null, true, 'active', '{}', 'fp-jose-b', null, '2026-01-03T00:00:00Z', '2026-03-03T00:00:00Z'),
    ('${T.a}', '${P.bob}', '${I.aOkta}', '00uBob', 'bob@example.com', 'bob@acme.example', 'Bob', 'Jones',
      'Bob Jones', false, 'SUSPENDED', '{"title": "ex-admin"}', 'fp-bob', '2026-04-01T12:00:00Z', '2026-01-04T00:00:00Z',
      '2026-04-01T12:00:00Z'),
    ('${T.a}', '${P.dave}', '${I.aAk}', 'ak-a-dave', 'dave@example.com', null, null, null,
      null, true, 'active', '{"groups_raw": null}', 'fp-dave', null, '2026-01-05T00:00:00Z', '2026-01-05T00:00:00Z'),
    ('${T.a}', '${P.erin}', '${I.aOkta}', '00uErin', 'erin@example.com', 'erin@acme.example', 'Erin', 'Lee',
      'Erin Lee', true, 'ACTIVE', '{}', 'fp-erin', null, '2026-01-06T00:00:00Z', '2026-01-06T00:00:00Z')`);
  await exec(`
    insert into groups (id, tenant_id, integration_id, external_id, name, description, attributes, fingerprint,
      members_version, members_read_at) values
    ('${G.eng}', '${T.a}', '${I.aOkta}', '00gEng', 'Engineering', 'Builds things', '{"type": "OKTA_GROUP"}', 'fpg-eng',
      '2026-04-01T00:00:00Z', '2026-04-02T00:00:00Z'),
    ('${G.admins}', '${T.a}', '${I.aOkta}', '00gAdm', 'Admins', null, '{}', 'fpg-adm', null, null),
    ('${G.staff}', '${T.a}', '${I.aAk}', 'ak-g-staff', 'Staff', null, '{}', 'fpg-staff', null, null),
    ('${G.empty}', '${T.a}', '${I.aAk}', 'ak-g-empty', 'Empty', null, '{}', 'fpg-empty', null, null),
    ('${G.everyone}', '${T.b}', '${I.bAk}', 'ak-g-every', 'Everyone', null, '{}', 'fpg-every', null, null),
    ('${G.ops}', '${T.b}', '${I.bAk}', 'ak-g-ops', 'Ops', 'On call', '{}', 'fpg-ops', null, null)`);
  await exec(`
    insert into group_memberships (group_id, user_id, created_at) values
    ('${G.eng}', '${P.alice}', '2026-01-01T01:00:00Z'),
    ('${G.eng}', '${P.joseNfc}', '2026-01-02T01:00:00Z'),
    ('${G.eng}', '${P.bob}', '2026-01-04T01:00:00Z'),
    ('${G.admins}', '${P.alice}', '2026-01-01T02:00:00Z'),
    ('${G.admins}', '${P.bob}', '2026-01-04T02:00:00Z'),
    ('${G.staff}', '${P.dave}', '2026-01-05T01:00:00Z'),
    ('${G.everyone}', '${P.alice}', '2026-01-10T01:00:00Z'),
    ('${G.everyone}', '${P.joseNfd}', '2026-01-03T01:00:00Z'),
    ('${G.ops}', '${P.joseNfd}', '2026-01-03T02:00:00Z')`);
  // Runs: ordered by queued_at; the held run queued after the approved one is not covered by its approval.
  await exec(`
    insert into runs (id, integration_id, trigger, status, dry_run, queued_at, started_at, finished_at, heartbeat_at, attempts,
      counts, stats, error, approves_run_id, approved_at, approved_by_run_id, held_reason) values
    ('${R.applied}', '${I.aOkta}', 'schedule', 'succeeded', false, '2026-04-01T00:00:00Z', '2026-04-01T00:00:01Z',
      '2026-04-01T00:00:05Z', '2026-04-01T00:00:04Z', 1, '{"usersCreated": 2, "membershipsAdded": 1}', '{"readMs": 120}', null,
      null, null, null, null),
    ('${R.dry}', '${I.aOkta}', 'manual', 'succeeded', true, '2026-04-02T00:00:00Z', '2026-04-02T00:00:01Z',
      '2026-04-02T00:00:02Z', null, 1, '{"usersUpdated": 1}', null, null, null, null, null, null),
    ('${R.approval}', '${I.aOkta}', 'manual', 'succeeded', false, '2026-04-04T00:00:00Z', '2026-04-04T00:00:01Z',
      '2026-04-04T00:00:03Z', null, 1, '{"usersDeprovisioned": 1}', null, null, null, null, null, null),
    ('${R.approvedHeld}', '${I.aOkta}', 'webhook', 'succeeded', false, '2026-04-03T00:00:00Z', '2026-04-03T00:00:01Z',
      '2026-04-03T00:00:02Z', null, 1, '{"usersDeprovisioned": 0}', null, null, null, '2026-04-04T00:00:03Z', '${R.approval}',
      'would deprovision 2 of 5 users (40%), above 10%'),
    ('${R.held}', '${I.aOkta}', 'schedule', 'held', false, '2026-04-05T00:00:00Z', '2026-04-05T00:00:01Z',
      '2026-04-05T00:00:02Z', null, 1, '{"usersUpdated": 1}', null, null, null, null, null, 'would deprovision 1 of 4 users (25%), above 10%'),
    ('${R.failed}', '${I.bAk}', 'schedule', 'failed', false, '2026-04-06T00:00:00Z', '2026-04-06T00:00:01Z',
      '2026-04-06T00:00:09Z', '2026-04-06T00:00:08Z', 3, '{"membershipsAdded": 1}', null, 'authentik answered 503', null, null, null, null),
    ('${R.queued}', '${I.aAk}', 'webhook', 'queued', false, '2026-04-07T00:00:00Z', null, null, null, 0, null, null, null,
      null, null, null, null)`);
  await exec(`update runs set approves_run_id = '${R.approvedHeld}' where id = '${R.approval}'`);
  await exec(`
    insert into run_changes (run_id, kind, external_id, subject, detail, applied, created_at) values
    ('${R.applied}', 'user.created', '00uAlice', 'Alice.Smith@example.com', null, true, '2026-04-01T00:00:02Z'),
    ('${R.applied}', 'user.created', '00uJose', '${NFC}', null, true, '2026-04-01T00:00:02Z'),
    ('${R.applied}', 'membership.added', '00gEng/00uAlice', 'Alice.Smith@example.com in Engineering', null, true, '2026-04-01T00:00:03Z'),
    ('${R.dry}', 'user.updated', '00uErin', 'erin@example.com', '{"changed": ["email"]}', false, '2026-04-02T00:00:01Z'),
    ('${R.dry}', 'user.deprovisioned', '00uBob', 'bob@example.com', '{"skipped": "would be skipped"}', false, '2026-04-02T00:00:01Z'),
    ('${R.approvedHeld}', 'user.deprovisioned', '00uBob', 'bob@example.com', '{"reason": "suspended"}', false, '2026-04-03T00:00:01Z'),
    ('${R.approvedHeld}', 'membership.removed', '00gAdm/00uAlice', 'Alice.Smith@example.com in Admins', null, false, '2026-04-03T00:00:01Z'),
    ('${R.approval}', 'user.deprovisioned', '00uBob', 'bob@example.com', '{"reason": "suspended"}', true, '2026-04-04T00:00:02Z'),
    ('${R.approval}', 'membership.removed', '00gAdm/00uAlice', '00gAdm/00uAlice',
      '{"skipped": "approved in run ${R.approvedHeld}, but the IdP no longer warrants it"}', false, '2026-04-04T00:00:02Z'),
    ('${R.held}', 'user.updated', '00uErin', 'erin@example.com', null, true, '2026-04-05T00:00:01Z'),
    ('${R.held}', 'user.deprovisioned', '00uErin', 'erin@example.com', '{"reason": "deactivated"}', false, '2026-04-05T00:00:01Z'),
    ('${R.held}', 'membership.removed', '00gEng/00uJose', '${NFC} in Engineering', null, false, '2026-04-05T00:00:01Z'),
    ('${R.failed}', 'membership.added', 'ak-g-ops/ak-jose', '${NFD} in Ops', null, true, '2026-04-06T00:00:05Z')`);
  await exec(`
    insert into locks (tenant_id, user_id, integration_id, external_id, user_name, reason, run_id, created_at) values
    ('${T.a}', '${P.bob}', '${I.aOkta}', '00uBob', 'bob@example.com', 'suspended in the IdP', '${R.approval}', '2026-04-04T00:00:02Z'),
    ('${T.a}', '${P.carol}', '${I.aAk}', 'ak-carol', 'carol@example.com', 'deleted in the IdP', '${R.queued}', '2026-03-01T00:00:00Z'),
    ('${T.b}', '${P.dave}', '${I.bAk}', 'ak-b-dave', 'dave@example.com', 'unassigned from the app', null, '2026-03-02T00:00:00Z'),
    ('${T.a}', '${P.joseNfd}', '${I.aAk}', 'ak-a-jose', '${NFD}', 'deactivated', null, '2026-03-03T00:00:00Z'),
    ('${T.b}', '${P.erin}', '${I.bAk}', null, null, 'legacy lock', null, '2025-12-01T00:00:00Z'),
    ('${T.a}', '${P.frank}', '${I.gone}', '00uFrank', 'frank@example.com', 'deactivated', null, '2026-03-04T00:00:00Z')`);
  // The integration is deleted since: its lock stays with integration_id set null (FK on delete set null).
  await exec(`delete from integrations where id = '${I.gone}'`);
}

interface OldState {
  users: Record<string, unknown>[];
  access: Record<string, unknown>[];
  groups: Record<string, unknown>[];
  memberships: { group_id: string; user_id: string; created_at: Date }[];
  locks: Record<string, unknown>[];
  runs: Record<string, unknown>[];
  changes: Record<string, unknown>[];
  integrations: Record<string, unknown>[];
  tenants: Record<string, unknown>[];
}

async function readOld(raw: AnyDb): Promise<OldState> {
  return {
    users: await rows(raw, 'select * from users order by id'),
    access: await rows(raw, 'select * from tenant_access order by id'),
    groups: await rows(raw, 'select * from groups order by id'),
    memberships: await rows(raw, 'select * from group_memberships order by group_id, user_id'),
    locks: await rows(raw, 'select * from locks order by tenant_id, user_id'),
    runs: await rows(raw, 'select * from runs order by id'),
    changes: await rows(raw, 'select * from run_changes order by id'),
    integrations: await rows(raw, 'select * from integrations order by id'),
    tenants: await rows(raw, 'select * from tenants order by id'),
  };
}

/** The person a person of the old model is after the merge (only the NFD José is merged, into the NFC one). */
const mergedPerson = (id: string) => (id === P.joseNfd ? P.joseNfc : id);
const identity = (r: { integration_id: unknown; external_id: unknown }) => `${r.integration_id}|${r.external_id}`;

/** What the old code's changeState said of a change (src/runs/change-state.ts before the accounts change). */
function oldState(change: Record<string, unknown>, run: Record<string, unknown>): string {
  if (change.applied) return 'applied';
  if (run.dry_run) return 'planned';
  if ((change.detail as { skipped?: unknown } | null)?.skipped) return 'skipped';
  return 'held';
}

describe('migration 2026-11-29T0000-accounts on a database filled by the old model', () => {
  let db: Db;
  let raw: AnyDb;
  let migrator: Migrator;
  let drop: () => Promise<void>;
  let old: OldState;

  beforeAll(async () => {
    ({ db, raw, migrator, drop } = await oldModelDatabase());
    await fillOldModel(raw);
    old = await readOld(raw);
    // The fill is what the old model allows (its own constraints took it), and is what the test expects.
    expect(old.access).toHaveLength(7);
    expect(old.memberships).toHaveLength(9);
    expect(old.locks).toHaveLength(6);
    expect(old.locks.find((l) => l.user_id === P.frank)?.integration_id).toBeNull();
    expect(old.changes).toHaveLength(13);
    const { error, results } = await migrator.migrateTo(ACCOUNTS);
    if (error) throw error;
    expect(results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual([[ACCOUNTS, 'Up', 'Success']]);
  }, 120_000);
  afterAll(async () => drop?.());

  it('keeps tenants, integrations and groups untouched', async () => {
    expect(await rows(raw, 'select * from tenants order by id')).toEqual(old.tenants);
    expect(await rows(raw, 'select * from integrations order by id')).toEqual(old.integrations);
    expect(await rows(raw, 'select * from groups order by id')).toEqual(old.groups);
  });

  it('merges only the people the new key folds together, into the oldest, and keys them by NFC + lower', async () => {
    const users = await rows<Record<string, unknown>>(raw, 'select * from users order by id');
    const expected = old.users
      .filter((u) => u.id !== P.joseNfd)
      .map((u) => ({ ...u, user_name_key: (u.user_name as string).normalize('NFC').toLowerCase() }));
    expect(users).toEqual(expected);
  });

  it('turns every tenant_access row into an account with the same attributes, person link and active flag', async () => {
    const accounts = await rows<Record<string, unknown>>(raw, 'select * from accounts');
    expect(accounts).toHaveLength(old.access.length);
    const byIdentity = new Map(accounts.map((a) => [identity(a as never), a]));
    expect(byIdentity.size).toBe(accounts.length);
    for (const ta of old.access) {
      const account = byIdentity.get(identity(ta as never));
      expect(account, `account for ${identity(ta as never)}`).toBeDefined();
      const { id: _legacyId, user_id, ...attributes } = ta;
      expect(account).toMatchObject(attributes);
      expect(account!.user_id).toBe(mergedPerson(user_id as string));
      expect(account!.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(account!.user_name_key).toBe((ta.user_name as string).normalize('NFC').toLowerCase());
    }
    // The people the new key merged keep all their accounts.
    const jose = accounts.filter((a) => a.user_id === P.joseNfc).map((a) => `${a.tenant_id}|${a.external_id}`).sort();
    expect(jose).toEqual([`${T.a}|00uJose`, `${T.b}|ak-jose`].sort());
    const alice = accounts.filter((a) => a.user_id === P.alice).map((a) => a.user_name).sort();
    expect(alice).toEqual(['Alice.Smith@example.com', 'alice.smith@example.com']);
  });

  it("puts every membership on the account of that person in the group's tenant", async () => {
    const now = await rows<{ group_id: string; integration_id: string; external_id: string; created_at: Date }>(
      raw,
      `select gm.group_id, a.integration_id, a.external_id, gm.created_at
       from group_memberships gm join accounts a on a.id = gm.account_id join groups g on g.id = gm.group_id
       where a.tenant_id = g.tenant_id`,
    );
    const total = await rows<{ n: string }>(raw, 'select count(*) as n from group_memberships');
    expect(Number(total[0]!.n)).toBe(old.memberships.length);
    const groupTenant = new Map(old.groups.map((g) => [g.id as string, g.tenant_id as string]));
    const expected = old.memberships.map((m) => {
      // The old model: one access row per (tenant, person); that row's IdP identity is the account.
      const ta = old.access.find((a) => a.tenant_id === groupTenant.get(m.group_id) && a.user_id === m.user_id)!;
      expect(ta, `access of ${m.user_id} in the tenant of ${m.group_id}`).toBeDefined();
      return { group_id: m.group_id, integration_id: ta.integration_id, external_id: ta.external_id, created_at: m.created_at };
    });
    const key = (r: { group_id: string; external_id: unknown }) => `${r.group_id}|${r.external_id}`;
    expect([...now].sort((x, y) => key(x).localeCompare(key(y)))).toEqual(expected.sort((x, y) => key(x).localeCompare(key(y))));
  });

  it('keeps every lock, naming the account where one exists', async () => {
    const locks = await rows<Record<string, unknown>>(
      raw,
      `select l.*, a.integration_id as account_integration_id, a.external_id as account_external_id
       from locks l left join accounts a on a.id = l.account_id`,
    );
    expect(locks).toHaveLength(old.locks.length);
    const ids = new Set(locks.map((l) => l.id));
    expect(ids.size).toBe(locks.length);
    const accountOf = new Map<string, string | null>([
      [P.bob, `${I.aOkta}|00uBob`], // suspended: the account is still there, inactive
      [P.carol, null], // deleted person
      [P.dave, null], // access removed in B (his account in A is another tenant's)
      [P.joseNfd, null], // merged person's lock: identity with no account
      [P.erin, null], // legacy lock in B; Erin's only account is in A
      [P.frank, null], // integration deleted
    ]);
    for (const l of old.locks) {
      const now = locks.filter(
        (x) => x.tenant_id === l.tenant_id && x.external_id === l.external_id && x.reason === l.reason && x.user_name === l.user_name,
      );
      expect(now, `lock of ${l.user_id}`).toHaveLength(1);
      const { user_id, ...rest } = l;
      expect(now[0]).toMatchObject(rest);
      expect(now[0]!.user_id).toBe(mergedPerson(user_id as string));
      const expectedAccount = accountOf.get(user_id as string);
      expect(now[0]!.account_id === null ? null : `${now[0]!.account_integration_id}|${now[0]!.account_external_id}`).toBe(expectedAccount);
    }
  });

  it('keeps every run, with no warnings, and every change with the state the old code showed', async () => {
    const runs = await rows<Record<string, unknown>>(raw, 'select * from runs order by id');
    expect(runs.map(({ warnings: _w, ...r }) => r)).toEqual(old.runs);
    expect(runs.every((r) => Array.isArray(r.warnings) && (r.warnings as unknown[]).length === 0)).toBe(true);
    const changes = await rows<Record<string, unknown>>(raw, 'select * from run_changes order by id');
    const runById = new Map(old.runs.map((r) => [r.id as string, r]));
    expect(changes).toEqual(
      old.changes.map(({ applied: _a, ...c }) => ({ ...c, state: oldState(old.changes.find((o) => o.id === c.id)!, runById.get(c.run_id as string)!) })),
    );
    // The fill covers every state.
    expect(new Set(changes.map((c) => c.state))).toEqual(new Set(['applied', 'planned', 'held', 'skipped']));
  });

  it("reads back through the app's own paths: users, groups, change log, held operations", async () => {
    const directory = new DirectoryRepository(db);
    const accountIds = new Map(
      (await rows<{ id: string; integration_id: string; external_id: string }>(raw, 'select id, integration_id, external_id from accounts')).map(
        (a) => [identity(a), a.id],
      ),
    );
    for (const tenantId of [T.a, T.b]) {
      const access = old.access.filter((a) => a.tenant_id === tenantId);
      const tenantGroups = old.groups.filter((g) => g.tenant_id === tenantId);
      const groupName = new Map(tenantGroups.map((g) => [g.id as string, g.name as string]));
      const expectedUsers = access.map((a) => ({
        id: accountIds.get(identity(a as never)),
        userName: a.user_name,
        email: a.email,
        givenName: a.given_name,
        familyName: a.family_name,
        displayName: a.display_name,
        active: a.active,
        // The old listing: a lock on (tenant, person).
        locked: old.locks.some((l) => l.tenant_id === tenantId && l.user_id === a.user_id),
        groups: old.memberships
          .filter((m) => m.user_id === a.user_id && groupName.has(m.group_id))
          .map((m) => groupName.get(m.group_id)!)
          .sort(),
      }));
      const users = await directory.listTenantUsers(tenantId);
      const byId = (x: { id?: string }, y: { id?: string }) => (x.id ?? '').localeCompare(y.id ?? '');
      expect([...users].sort(byId)).toEqual(expectedUsers.sort(byId));

      const expectedGroups = tenantGroups.map((g) => ({
        id: g.id as string,
        name: g.name,
        // Members are now named by their account in the tenant (the old listing used the person's name).
        members: old.memberships
          .filter((m) => m.group_id === g.id)
          .map((m) => access.find((a) => a.user_id === m.user_id)!.user_name as string)
          .sort(),
      }));
      const groups = (await directory.listTenantGroups(tenantId)).map((g) => ({ ...g, members: [...g.members].sort() }));
      expect(groups.sort(byId)).toEqual(expectedGroups.sort(byId));
    }
    // Spot checks of what the listings say, in words.
    const a = await directory.listTenantUsers(T.a);
    expect(a.find((u) => u.userName === 'bob@example.com')).toMatchObject({ active: false, locked: true, groups: ['Admins', 'Engineering'] });
    expect(a.find((u) => u.userName === NFC)).toMatchObject({ active: true, locked: false, groups: ['Engineering'] });
    const b = await directory.listTenantUsers(T.b);
    expect(b.find((u) => u.userName === NFD)).toMatchObject({ active: true, locked: false, groups: ['Everyone', 'Ops'] });
    expect((await directory.listTenantGroups(T.b)).find((g) => g.name === 'Everyone')?.members.sort()).toEqual(
      ['alice.smith@example.com', NFD].sort(),
    );

    const runs = new RunRepository(db);
    const runById = new Map(old.runs.map((r) => [r.id as string, r]));
    for (const runId of Object.values(R)) {
      const changes = await runs.listChanges(runId);
      const expected = old.changes
        .filter((c) => c.run_id === runId)
        .map((c) => ({
          kind: c.kind,
          externalId: c.external_id,
          subject: c.subject,
          detail: c.detail,
          state: oldState(c, runById.get(runId)!),
          at: (c.created_at as Date).toISOString(),
        }));
      expect(changes, `changes of run ${runId}`).toEqual(expected);
      // What the CLI and dashboards show: the old changeState's 'approved' for an approved held run.
      const summary = (await runs.find(runId))!;
      expect(summary).toBeDefined();
      const shown = changes.map((c) => changeState(c, summary));
      if (runId === R.approvedHeld) expect(shown).toEqual(['approved', 'approved']);
    }
    // The still-held run's operations are what the next approval would apply; the approved one holds nothing.
    const held = await runs.heldOpsByRun(I.aOkta);
    expect([...held.keys()]).toEqual([R.held]);
    expect(held.get(R.held)).toEqual([
      { kind: 'user.deprovisioned', externalId: '00uErin' },
      { kind: 'membership.removed', groupExternalId: '00gEng', userExternalId: '00uJose' },
    ]);
  });

  it('runs down back to the old model on that data without losing any of it, and up again', async () => {
    const down = await migrator.migrateDown();
    if (down.error) throw down.error;
    expect(down.results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual([[ACCOUNTS, 'Down', 'Success']]);
    expect(await applied(raw)).not.toContain(ACCOUNTS);

    // Every access row, membership, lock and change is back in the old shape (people stay merged).
    const access = await rows<Record<string, unknown>>(raw, 'select * from tenant_access');
    expect(access).toHaveLength(old.access.length);
    for (const ta of old.access) {
      const { id: _id, user_id, ...attributes } = ta;
      const now = access.find((x) => identity(x as never) === identity(ta as never));
      expect(now).toMatchObject(attributes);
      expect(now!.user_id).toBe(mergedPerson(user_id as string));
    }
    const memberships = await rows<{ group_id: string; user_id: string; created_at: Date }>(
      raw,
      'select group_id, user_id, created_at from group_memberships',
    );
    const mkey = (m: { group_id: string; user_id: string }) => `${m.group_id}|${m.user_id}`;
    expect(memberships.map(mkey).sort()).toEqual(old.memberships.map((m) => mkey({ ...m, user_id: mergedPerson(m.user_id) })).sort());
    const locks = await rows<Record<string, unknown>>(raw, 'select * from locks');
    expect(locks).toHaveLength(old.locks.length);
    const changes = await rows<Record<string, unknown>>(raw, 'select * from run_changes order by id');
    expect(changes).toEqual(old.changes);
    expect(await rows(raw, 'select * from runs order by id')).toEqual(old.runs);

    const up = await migrator.migrateTo(ACCOUNTS);
    if (up.error) throw up.error;
    expect(up.results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual([[ACCOUNTS, 'Up', 'Success']]);
    const counts = await rows<Record<string, string>>(
      raw,
      `select (select count(*) from accounts) as accounts, (select count(*) from group_memberships) as memberships,
              (select count(*) from locks) as locks, (select count(*) from run_changes) as changes,
              (select count(*) from locks where account_id is not null) as linked_locks`,
    );
    expect(counts[0]).toEqual({
      accounts: String(old.access.length),
      memberships: String(old.memberships.length),
      locks: String(old.locks.length),
      changes: String(old.changes.length),
      linked_locks: '1',
    });
    const users = await new DirectoryRepository(db).listTenantUsers(T.a);
    expect(users.find((u) => u.userName === 'bob@example.com')).toMatchObject({ active: false, locked: true, groups: ['Admins', 'Engineering'] });
  });
});

describe('migration 2026-11-29T0000-accounts: down gives back the old schema', () => {
  let raw: AnyDb;
  let migrator: Migrator;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    ({ raw, migrator, drop } = await oldModelDatabase());
  }, 60_000);
  afterAll(async () => drop?.());

  it('has the constraints, indexes and columns of the old model after up and down', async () => {
    const before = await schemaShape(raw);
    await fillOldModel(raw);
    const up = await migrator.migrateTo(ACCOUNTS);
    if (up.error) throw up.error;
    const down = await migrator.migrateDown();
    if (down.error) throw down.error;
    const after = await schemaShape(raw);
    expect({ missing: before.filter((d) => !after.includes(d)), extra: after.filter((d) => !before.includes(d)) }).toEqual({
      missing: [],
      extra: [],
    });
  });
});

describe('migration 2026-11-29T0000-accounts: people the new key merges within one tenant', () => {
  let raw: AnyDb;
  let db: Db;
  let migrator: Migrator;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    ({ db, raw, migrator, drop } = await oldModelDatabase());
  }, 60_000);
  afterAll(async () => drop?.());

  it('keeps both accounts, each with its memberships and lock, when NFC and NFD logins each had access to the same tenant', async () => {
    // The old model allowed it: two integrations of one tenant (Okta sends NFC, authentik NFD),
    // two people (lower() does not normalize), one access row each.
    const t = randomUUID();
    const okta = randomUUID();
    const ak = randomUUID();
    const nfc = randomUUID();
    const nfd = randomUUID();
    const gOkta = randomUUID();
    const gAk = randomUUID();
    const exec = (q: string) => sql.raw(q).execute(raw);
    await exec(`insert into tenants (id, slug, name) values ('${t}', 'gamma', 'Gamma')`);
    await exec(`insert into integrations (id, tenant_id, provider, base_url, credentials, okta_app_id, authentik_app, webhook_secret_hash) values
      ('${okta}', '${t}', 'okta', 'https://g.okta.example', '\\x01', '0oaG', null, 'h1'),
      ('${ak}', '${t}', 'authentik', 'https://g.ak.example', '\\x02', null, 'g-app', 'h2')`);
    await exec(`insert into users (id, user_name, created_at) values
      ('${nfc}', '${NFC}', '2026-01-01T00:00:00Z'), ('${nfd}', '${NFD}', '2026-01-02T00:00:00Z')`);
    await exec(`insert into tenant_access (tenant_id, user_id, integration_id, external_id, user_name, active, idp_status, attributes, fingerprint) values
      ('${t}', '${nfc}', '${okta}', '00uJ', '${NFC}', false, 'SUSPENDED', '{"src": "okta"}', 'f1'),
      ('${t}', '${nfd}', '${ak}', 'akJ', '${NFD}', true, 'active', '{"src": "authentik"}', 'f2')`);
    await exec(`insert into groups (id, tenant_id, integration_id, external_id, name, attributes, fingerprint) values
      ('${gOkta}', '${t}', '${okta}', '00gX', 'Okta group', '{}', 'g1'), ('${gAk}', '${t}', '${ak}', 'akX', 'authentik group', '{}', 'g2')`);
    await exec(`insert into group_memberships (group_id, user_id) values ('${gOkta}', '${nfc}'), ('${gAk}', '${nfd}')`);
    await exec(`insert into locks (tenant_id, user_id, integration_id, external_id, user_name, reason) values
      ('${t}', '${nfc}', '${okta}', '00uJ', '${NFC}', 'suspended in Okta')`);

    const { error } = await migrator.migrateTo(ACCOUNTS);
    if (error) {
      // Nothing is lost (the migration's transaction rolled back), but the database cannot move on.
      expect(await applied(raw)).not.toContain(ACCOUNTS);
      expect(await rows(raw, 'select user_id from tenant_access order by external_id')).toEqual([{ user_id: nfc }, { user_id: nfd }]);
    }
    expect(error, 'the migration runs on this database').toBeUndefined();

    const accounts = await rows<{ integration_id: string; external_id: string; user_id: string; active: boolean }>(
      raw,
      'select integration_id, external_id, user_id, active from accounts order by external_id',
    );
    expect(accounts).toEqual([
      { integration_id: okta, external_id: '00uJ', user_id: nfc, active: false },
      { integration_id: ak, external_id: 'akJ', user_id: nfc, active: true },
    ]);
    const members = await rows(
      raw,
      `select g.name, a.external_id from group_memberships gm join groups g on g.id = gm.group_id join accounts a on a.id = gm.account_id order by lower(g.name)`,
    );
    expect(members).toEqual([
      { name: 'authentik group', external_id: 'akJ' },
      { name: 'Okta group', external_id: '00uJ' },
    ]);
    const users = await new DirectoryRepository(db).listTenantUsers(t);
    expect(users.map((u) => [u.userName, u.active, u.locked, u.groups])).toEqual(
      expect.arrayContaining([
        [NFC, false, true, ['Okta group']],
        [NFD, true, false, ['authentik group']],
      ]),
    );
  });
});
