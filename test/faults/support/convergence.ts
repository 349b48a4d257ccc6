import { sql } from 'kysely';
import type { Config } from '../../../src/config.js';
import type { Db } from '../../../src/db/database.js';
import { DirectoryRepository } from '../../../src/db/directory.repository.js';
import { IntegrationService } from '../../../src/integrations/integration.service.js';
import { FakeAuthentik } from '../../support/fake-authentik.js';
import { FakeOkta } from '../../support/fake-okta.js';
import { runNow } from '../../support/fixtures.js';
import { type Projection, authentikProjection, normalizeUserName, oktaProjection } from '../../support/spec-model.js';

export interface ConvergenceReport {
  /** Every way the tenant's listings differ from SPEC's projection of the fake IdP; empty when converged. */
  readonly mismatches: string[];
  /** Deprovisions (ever, by any run of the integration) of users the scenario kept active and in scope. */
  readonly wrongfulDeprovisions: string[];
  /** Runs whose recorded counts and applied change-log rows disagree. */
  readonly changeLogErrors: string[];
  /**
   * Changes a clean dry run still plans (-1 when the dry run did not succeed). This is an
   * idempotence check only: the expected state never comes from it.
   */
  readonly pendingChanges: number;
}

// Every fake IdP started in this process, by URL, so the check finds the directory an
// integration reads without its callers passing it (they may, as the last argument).
const started = new Map<string, FakeOkta | FakeAuthentik>();
for (const proto of [FakeOkta.prototype, FakeAuthentik.prototype] as { start: () => Promise<FakeOkta | FakeAuthentik> }[]) {
  const start = proto.start;
  proto.start = async function (this: FakeOkta | FakeAuthentik) {
    const self = await start.call(this);
    started.set(self.url, self);
    return self;
  };
}

/** SPEC's count keys and the change kinds (SPEC's event types) that record them. */
const CHANGE_KIND_OF: Record<string, string> = {
  usersCreated: 'user.created',
  usersUpdated: 'user.updated',
  usersDeprovisioned: 'user.deprovisioned',
  usersReprovisioned: 'user.reprovisioned',
  groupsCreated: 'group.created',
  groupsUpdated: 'group.updated',
  groupsDeleted: 'group.deleted',
  membershipsAdded: 'group.user_added',
  membershipsRemoved: 'group.user_removed',
};

/**
 * Compares the tenant's directory, as `dirsync users` / `dirsync groups` print it, with SPEC's
 * projection of the fake IdP's own model (test/support/spec-model.ts): never with the
 * production connector's reading or a production dry run, so a paging, mapping or scope bug
 * cannot sit on both sides. Checks every in-scope identity's account and attributes, active
 * and locked flags per the deprovision mode, groups and their members, no duplicates, that
 * every run's counts equal its applied change rows, and (idempotence) that a dry run plans
 * nothing. `keptActive` are the IdP ids the scenario never took out of scope or deactivated
 * since `since`: any deprovision of one of them by a run queued from then on is wrongful.
 *
 * A point-in-time check: it knows the IdP's present, not the history, so it assumes the
 * tenant has this one integration (as every fault scenario does) and matches accounts to
 * identities by login.
 */
export async function checkConvergence(
  db: Db,
  config: Config,
  integrationId: string,
  keptActive: Iterable<string> = [],
  /** Only runs queued from then on count for wrongful deprovisions (a scenario's round). */
  since = new Date(0),
  /** The fake IdP the integration reads; found by its URL when not given. */
  idp?: FakeOkta | FakeAuthentik,
): Promise<ConvergenceReport> {
  const integration = (await new IntegrationService(db, config).get(integrationId)) as unknown as Record<string, unknown>;
  const fake = idp ?? started.get(String(integration.baseUrl).replace(/\/+$/, ''));
  if (!fake) throw new Error(`checkConvergence: no fake IdP of this process serves ${String(integration.baseUrl)}`);
  const projection =
    fake instanceof FakeOkta
      ? oktaProjection(fake, (integration.oktaAppId as string | null) ?? undefined)
      : authentikProjection(fake, (integration.authentikApp as string | null) ?? undefined);
  if (fake instanceof FakeOkta) markWireBad(fake, projection);
  const tenantId = String(integration.tenantId);
  const mode = String(integration.deprovisionMode ?? 'suspend');
  const repo = new DirectoryRepository(db);
  const users = (await repo.listTenantUsers(tenantId)) as unknown as Entry[];
  const groups = (await repo.listTenantGroups(tenantId)) as unknown as { name: string; members: string[] }[];
  const mismatches = compare(projection, mode, users, groups);

  const kept = new Set(keptActive);
  const wrongfulDeprovisions: string[] = [];
  const changeLogErrors: string[] = [];
  try {
    const applied = await appliedFilter(db);
    const deprovisioned = await sql<{ external_id: string }>`
      select c.external_id from run_changes c join runs r on r.id = c.run_id
      where r.integration_id = ${integrationId} and c.kind = 'user.deprovisioned' and ${sql.raw(applied)} and r.queued_at >= ${since}`.execute(db);
    wrongfulDeprovisions.push(...deprovisioned.rows.map((d) => d.external_id).filter((id) => kept.has(id)));
    changeLogErrors.push(...(await checkChangeLog(db, integrationId, applied)));
  } catch (error) {
    changeLogErrors.push(`cannot read the change log: ${(error as Error).message}`);
  }
  // SPEC: a kept user (in scope, active, readable) has an active account, whatever the log says.
  for (const id of kept) {
    const r = projection.users.get(id);
    if (!r || !r.active || projection.bad.has(id) || !r.userName) continue;
    if (!users.some((u) => u.userName === r.userName && u.active)) wrongfulDeprovisions.push(id);
  }

  // A worker may still be running a follow-up run of the integration (a redelivered webhook's):
  // the dry run waits its turn rather than being refused as busy.
  const dry = await dryRunWhenIdle(db, config, integrationId);
  const counts = (dry.counts ?? {}) as Record<string, number>;
  const pendingChanges = dry.status === 'succeeded' ? Object.keys(CHANGE_KIND_OF).reduce((n, k) => n + (counts[k] ?? 0), 0) : -1;
  return { mismatches, wrongfulDeprovisions: [...new Set(wrongfulDeprovisions)], changeLogErrors, pendingChanges };
}

interface Entry {
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}

/** Records a test made unreadable on the wire only (a patched `userJson`) are bad too. */
function markWireBad(okta: FakeOkta, projection: Projection): void {
  for (const id of projection.users.keys()) {
    const wire = okta.userJson(okta.users.get(id)!) as { profile?: Record<string, unknown> };
    const login = wire.profile?.login;
    if (typeof login !== 'string' || login.trim() === '' || JSON.stringify(wire).includes('\\u0000')) projection.bad.add(id);
  }
}

function compare(p: Projection, mode: string, users: Entry[], groups: { name: string; members: string[] }[]): string[] {
  const problems: string[] = [];
  const good = [...p.users.values()].filter((r) => !p.bad.has(r.id) && r.userName !== null);
  const badNames = new Set([...p.users.values()].filter((r) => p.bad.has(r.id) && r.userName !== null).map((r) => r.userName!));
  const loginless = [...p.users.values()].filter((r) => p.bad.has(r.id) && r.userName === null).length;
  const groupsOf = (id: string) =>
    [...p.groups.values()].filter((g) => p.members.get(g.id)?.has(id)).map((g) => g.name).sort();
  const sorted = (xs: string[]) => [...xs].sort();
  const present = new Set<string>(); // userNames of good identities that have an account

  for (const r of good) {
    const entries = users.filter((u) => u.userName === r.userName);
    const who = `user ${r.userName} (${r.id})`;
    if (r.active) {
      const live = entries.filter((e) => e.active);
      if (live.length === 0) {
        problems.push(`${who}: no active account${entries.length ? ` (one is ${JSON.stringify(entries[0])})` : ''}`);
        continue;
      }
      if (live.length > 1) problems.push(`${who}: ${live.length} active accounts`);
      const e = live[0]!;
      present.add(r.userName!);
      for (const [field, want] of [
        ['email', r.email],
        ['givenName', r.givenName],
        ['familyName', r.familyName],
        ['displayName', r.displayName],
        ['locked', false],
      ] as const) {
        if ((e[field] ?? null) !== want) problems.push(`${who}: ${field} is ${JSON.stringify(e[field])}, the IdP says ${JSON.stringify(want)}`);
      }
      if (JSON.stringify(sorted(e.groups)) !== JSON.stringify(groupsOf(r.id))) {
        problems.push(`${who}: in groups ${JSON.stringify(sorted(e.groups))}, the IdP says ${JSON.stringify(groupsOf(r.id))}`);
      }
      continue;
    }
    // Deprovisioned by status: suspend keeps an inactive, locked account (if it ever had one);
    // remove-access and delete keep none.
    for (const e of entries) {
      if (mode !== 'suspend') problems.push(`${who}: still has an account after deprovision (${mode})`);
      else {
        present.add(r.userName!);
        if (e.active || !e.locked) problems.push(`${who}: deprovisioned in the IdP but active=${e.active} locked=${e.locked}`);
        if (JSON.stringify(sorted(e.groups)) !== JSON.stringify(groupsOf(r.id))) {
          problems.push(`${who}: in groups ${JSON.stringify(sorted(e.groups))}, the IdP says ${JSON.stringify(groupsOf(r.id))} (memberships mirror the IdP in every mode)`);
        }
      }
    }
  }

  // Accounts of no readable in-scope identity: out of scope, so deprovisioned.
  const goodNames = new Set(good.map((r) => r.userName!));
  let unmatched = 0;
  for (const e of users) {
    if (goodNames.has(e.userName) || badNames.has(e.userName)) continue;
    unmatched += 1;
    if (unmatched <= loginless) continue; // possibly a skipped record without a login: left as it was
    if (e.active) problems.push(`user ${e.userName}: out of scope but active`);
    else if (mode !== 'suspend') problems.push(`user ${e.userName}: out of scope but still has an account (${mode})`);
    else if (!e.locked) problems.push(`user ${e.userName}: deprovisioned but not locked`);
    if (!e.active && e.groups.length > 0) problems.push(`user ${e.userName}: out of scope but still in ${JSON.stringify(e.groups)}`);
  }
  const keys = users.filter((u) => u.active).map((u) => normalizeUserName(u.userName));
  if (new Set(keys).size !== keys.length) problems.push('two active accounts with one login');

  // Groups: exactly the IdP's, members mirroring it (a skipped record's memberships are left as they were).
  const remaining = [...groups];
  for (const g of p.groups.values()) {
    const i = remaining.findIndex((x) => x.name === g.name);
    if (i < 0) {
      problems.push(`group ${g.name}: missing`);
      continue;
    }
    const actual = remaining.splice(i, 1)[0]!;
    const want = good.filter((r) => p.members.get(g.id)?.has(r.id) && present.has(r.userName!)).map((r) => r.userName!).sort();
    const have = actual.members.filter((m) => !badNames.has(m) && (goodNames.has(m) || unmatched > loginless)).sort();
    const extra = have.filter((m) => !want.includes(m));
    const missing = want.filter((m) => !have.includes(m));
    if (extra.length || missing.length || have.length !== want.length) {
      problems.push(`group ${g.name}: members not in the IdP ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}${have.length !== new Set(have).size ? ', a member twice' : ''}`);
    }
  }
  for (const g of remaining) problems.push(`group ${g.name}: not in the IdP's scope but still here`);
  return problems;
}

/** The change log marks applied rows with `state = 'applied'` (issue 13) or, before it, `applied = true`. */
async function appliedFilter(db: Db): Promise<string> {
  const { rows } = await sql<{ column_name: string }>`
    select column_name from information_schema.columns where table_name = 'run_changes' and column_name in ('state', 'applied')`.execute(db);
  const columns = new Set(rows.map((r) => r.column_name));
  if (columns.has('state')) return `c.state = 'applied'`;
  if (columns.has('applied')) return 'c.applied = true';
  throw new Error('run_changes has neither a state nor an applied column');
}

/** Every finished run's counts must equal the applied change rows it wrote, kind by kind. */
async function checkChangeLog(db: Db, integrationId: string, applied: string): Promise<string[]> {
  const runs = await sql<{ id: string; status: string; counts: Record<string, number> | null; dry_run: boolean }>`
    select id, status, counts, dry_run from runs where integration_id = ${integrationId}`.execute(db);
  const rows = await sql<{ run_id: string; kind: string; n: number }>`
    select c.run_id, c.kind, count(*)::int as n from run_changes c join runs r on r.id = c.run_id
    where r.integration_id = ${integrationId} and ${sql.raw(applied)} group by 1, 2`.execute(db);
  // SPEC names the event types, not the change log's kinds: membership rows are matched by
  // meaning (`group.user_added`, `membership.added`, ...), the others by SPEC's names.
  const kindOf = (kind: string) =>
    /(member|user_?add|user_?remov)/i.test(kind) && !/^user\./.test(kind)
      ? /add/i.test(kind)
        ? 'group.user_added'
        : /remov|delet/i.test(kind)
          ? 'group.user_removed'
          : kind
      : kind;
  const logged = new Map<string, number>();
  for (const r of rows.rows) {
    const key = `${r.run_id}|${kindOf(r.kind)}`;
    logged.set(key, (logged.get(key) ?? 0) + Number(r.n));
  }
  const errors: string[] = [];
  for (const run of runs.rows) {
    if (run.dry_run || !run.counts) continue;
    for (const [key, kind] of Object.entries(CHANGE_KIND_OF)) {
      const counted = run.counts[key] ?? 0;
      const inLog = logged.get(`${run.id}|${kind}`) ?? 0;
      if (counted !== inLog) errors.push(`run ${run.id} (${run.status}): ${key} counted ${counted}, change log has ${inLog}`);
    }
  }
  return errors;
}

/** A dry run of the integration, tried again while another run of it is in progress (up to a minute). */
async function dryRunWhenIdle(db: Db, config: Config, integrationId: string): Promise<Awaited<ReturnType<typeof runNow>>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await runNow({ db, config }, integrationId, { dryRun: true });
    } catch (error) {
      if (!/"kind":"busy"/.test((error as Error).message) || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
