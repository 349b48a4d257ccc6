/**
 * One measured benchmark case, in a process of its own so its peak RSS is its own. Prints one
 * JSON line: wall time, peak RSS, IdP requests, and what the case did.
 *
 *   case.js sync <integration-id>                 a real run: SDK -> plan -> Postgres
 *   case.js idp-floor <okta-url> [json]           the same pages through the SDK, doing nothing
 *                                                 (json: taken as JSON, not as the SDK's models)
 *   case.js db-floor <users> <groups> <members> [bare|log]
 *                                                 the same rows into Postgres with COPY: into
 *                                                 copies of the real tables with their indexes and
 *                                                 check constraints (LIKE leaves foreign keys out), or
 *                                                 (bare) with their columns and defaults alone, or (log)
 *                                                 with their indexes and the change log an initial sync
 *                                                 records (one row per change)
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import okta from '@okta/okta-sdk-nodejs';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/database.js';
import { RunRepository } from '../src/db/run.repository.js';
import { createLogger } from '../src/log.js';
import { boundHeapGrowth } from '../src/heap.js';
import { jsonPages } from '../src/connectors/okta/okta.json-pages.js';
import { reconcile } from '../src/runs/reconcile.js';
import { generate } from './workload.js';

const [mode, ...args] = process.argv.slice(2);
let started = performance.now();

function report(extra: Record<string, unknown>): void {
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ mode, wallMs: performance.now() - started, maxRssMb, ...extra })}\n`);
}

async function sync(integrationId: string): Promise<void> {
  // As `dirsync start` and `dirsync worker` run it (src/cli/main.ts).
  boundHeapGrowth();
  const config = loadConfig(process.env, '');
  const db = createDb(config.databaseUrl);
  const { run } = await new RunRepository(db).trigger(integrationId, 'manual', false);
  const outcome = await reconcile({ db, config, log: createLogger('warn') }, run.id);
  await db.destroy();
  if (outcome.kind !== 'finished') throw new Error(JSON.stringify(outcome));
  report({ status: outcome.run.status, error: outcome.run.error, counts: outcome.run.counts, requests: outcome.run.stats?.requests ?? 0, readMs: outcome.run.stats?.readMs, applyMs: outcome.run.stats?.applyMs, totalMs: outcome.run.stats?.totalMs });
}

/**
 * The IdP floor: every page a sync reads, through the SDK, doing nothing with them. `json`: the
 * same requests with each page taken as JSON (jsonPages, as the connector reads listings), not
 * turned into the SDK's models: the floor of reading the pages at all.
 */
async function idpFloor(orgUrl: string, json: boolean): Promise<void> {
  const client = new okta.Client({ orgUrl, token: 'bench-token', authorizationMode: 'SSWS', cacheMiddleware: null } as ConstructorParameters<typeof okta.Client>[0]);
  const pages = <T>(collection: Promise<okta.Collection<T>>): Promise<okta.Collection<unknown>> => (json ? jsonPages(collection) : collection);
  let items = 0;
  let requests = 0;
  const groupIds: string[] = [];
  const drain = async (collection: AsyncIterable<unknown>, each?: (item: unknown) => void) => {
    for await (const item of collection) {
      items += 1;
      each?.(item);
    }
  };
  client.requestExecutor.on('request', () => (requests += 1));
  await drain(await pages(client.applicationApi.listApplicationUsers({ appId: '0oaBench', expand: 'user', limit: 500 })));
  await drain(await pages(client.applicationApi.listApplicationGroupAssignments({ appId: '0oaBench', expand: 'group', limit: 200 })), (g) =>
    groupIds.push((g as { id: string }).id),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < groupIds.length) await drain(await pages(client.groupApi.listGroupUsers({ groupId: groupIds[next++]!, limit: 1000 })));
    }),
  );
  report({ items, requests });
}

/**
 * The DB floor: the rows an initial sync writes, with COPY. `bare`: into tables with the real
 * columns and defaults alone (issue 19's floor); otherwise into copies of the real tables with
 * their indexes and check constraints (LIKE copies no foreign key); `log` adds what SPEC also asks of a run: one change-log row
 * per applied change (run_changes, which is the event feed), shaped as an initial sync records
 * them (user.created, group.created, membership.added with their `of` and `ids`), into a copy of
 * run_changes with its indexes.
 */
async function dbFloor(users: number, groups: number, memberships: number, variant: 'real' | 'bare' | 'log'): Promise<void> {
  const bare = variant === 'bare';
  const dir = generate({ users, groups, memberships });
  started = performance.now(); // the floor is the writing, not the generating
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  const suffix = randomUUID().slice(0, 8);
  const tables = {
    users: `floor_users_${suffix}`,
    access: `floor_access_${suffix}`,
    groups: `floor_groups_${suffix}`,
    members: `floor_members_${suffix}`,
    ...(variant === 'log' && { changes: `floor_changes_${suffix}` }),
  };
  // Bare: the columns, their defaults and generated values alone (no index, key or check):
  // issue 19's floor. (LIKE keeps NOT NULL, which costs nothing to speak of.)
  const like = bare ? ' including defaults including generated' : ' including all';
  await client.query(`create table ${tables.users} (like users${like})`);
  await client.query(`create table ${tables.access} (like accounts${like})`);
  await client.query(`create table ${tables.groups} (like groups${like})`);
  await client.query(`create table ${tables.members} (like group_memberships${like})`);
  if (tables.changes) await client.query(`create table ${tables.changes} (like run_changes including all)`);
  const tenant = randomUUID();
  const integration = randomUUID();
  const userIds = dir.users.map(() => randomUUID());
  const accountIds = dir.users.map(() => randomUUID());
  const groupIds = dir.groups.map(() => randomUUID());
  // Rows go in chunks of about 64 KB: one CopyData message per row would time the stream, not Postgres.
  const copy = async (sqlText: string, rows: Iterable<string>) => {
    const stream = client.query(copyFrom(sqlText));
    await pipeline(Readable.from(chunked(rows)), stream);
  };
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
  await copy(
    `copy ${tables.users} (id, user_name) from stdin`,
    (function* () {
      for (let i = 0; i < dir.users.length; i++) yield `${userIds[i]}\t${esc(dir.users[i]!.login)}\n`;
    })(),
  );
  await copy(
    `copy ${tables.access} (id, tenant_id, user_id, integration_id, external_id, user_name, email, given_name, family_name, display_name, active, idp_status, attributes, fingerprint) from stdin`,
    (function* () {
      for (let i = 0; i < dir.users.length; i++) {
        const u = dir.users[i]!;
        const attrs = esc(JSON.stringify({ login: u.login, email: u.email, firstName: u.firstName, lastName: u.lastName, department: u.department }));
        yield `${accountIds[i]}\t${tenant}\t${userIds[i]}\t${integration}\t${u.id}\t${esc(u.login)}\t${esc(u.email)}\t${u.firstName}\t${u.lastName}\t${u.firstName} ${u.lastName}\tt\tACTIVE\t${attrs}\tfingerprint-of-${i}\n`;
      }
    })(),
  );
  await copy(
    `copy ${tables.groups} (id, tenant_id, integration_id, external_id, name, attributes, fingerprint) from stdin`,
    (function* () {
      for (let g = 0; g < dir.groups.length; g++) yield `${groupIds[g]}\t${tenant}\t${integration}\t${dir.groups[g]!.id}\t${dir.groups[g]!.name}\t{}\tfp\n`;
    })(),
  );
  await copy(
    `copy ${tables.members} (group_id, account_id) from stdin`,
    (function* () {
      for (let g = 0; g < dir.members.length; g++) for (const u of dir.members[g]!) yield `${groupIds[g]}\t${accountIds[u]}\n`;
    })(),
  );
  let changes = 0;
  if (tables.changes) {
    const runId = randomUUID();
    const line = (kind: string, externalId: string, subject: string, detail: unknown) => {
      changes += 1;
      return `${runId}\t${tenant}\t${integration}\t${kind}\t${esc(externalId)}\t${esc(subject)}\t${esc(JSON.stringify(detail))}\tapplied\n`;
    };
    await copy(
      `copy ${tables.changes} (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state) from stdin`,
      (function* () {
        for (let g = 0; g < dir.groups.length; g++) {
          const group = dir.groups[g]!;
          yield line('group.created', group.id, group.name, { description: null, of: { group: { name: group.name, description: null } }, ids: { groupId: groupIds[g] } });
        }
        for (let i = 0; i < dir.users.length; i++) {
          const u = dir.users[i]!;
          const account = { userName: u.login, email: u.email, givenName: u.firstName, familyName: u.lastName, displayName: `${u.firstName} ${u.lastName}`, active: true, locked: false };
          yield line('user.created', u.id, u.login, { email: u.email, status: 'ACTIVE', of: { account }, ids: { accountId: accountIds[i], personId: userIds[i], active: true, locked: false } });
        }
        for (let g = 0; g < dir.members.length; g++) {
          const group = dir.groups[g]!;
          for (const i of dir.members[g]!) {
            const u = dir.users[i]!;
            const detail = { group: group.id, user: u.id, of: { account: { userName: u.login }, group: { name: group.name } }, ids: { groupId: groupIds[g], accountId: accountIds[i], personId: userIds[i] } };
            yield line('membership.added', `${group.id}/${u.id}`, `${u.login} in ${group.name}`, detail);
          }
        }
      })(),
    );
  }
  const rows = dir.users.length * 2 + dir.groups.length + dir.members.reduce((n, m) => n + m.length, 0) + changes;
  for (const t of Object.values(tables)) await client.query(`drop table ${t}`);
  await client.end();
  report({ rows });
}

function* chunked(rows: Iterable<string>, size = 64 * 1024): Generator<string> {
  let chunk = '';
  for (const row of rows) {
    chunk += row;
    if (chunk.length >= size) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}

async function main(): Promise<void> {
  if (mode === 'sync') return sync(args[0]!);
  if (mode === 'idp-floor') return idpFloor(args[0]!, args[1] === 'json');
  if (mode === 'db-floor') return dbFloor(Number(args[0]), Number(args[1]), Number(args[2]), args[3] === 'bare' || args[3] === 'log' ? args[3] : 'real');
  throw new Error(`unknown mode ${mode}`);
}

main().catch((error: unknown) => {
  console.error(error);
  // Exit even with connections still open: a benchmark that failed must not hang.
  process.exit(1);
});
