import { sql } from 'kysely';
import type { Config } from '../../../src/config.js';
import { createConnector } from '../../../src/connectors/index.js';
import type { Snapshot } from '../../../src/core/model.js';
import { CHANGE_KINDS, PLAN_KINDS, totalChanges } from '../../../src/core/plan.js';
import type { Db } from '../../../src/db/database.js';
import { IntegrationService } from '../../../src/integrations/integration.service.js';
import { runNow } from '../../support/fixtures.js';

export interface ConvergenceReport {
  /** Every way local state differs from the IdP's projection; empty when converged. */
  readonly mismatches: string[];
  /** Deprovisions (ever, by any run of the integration) of users the scenario kept active and in scope. */
  readonly wrongfulDeprovisions: string[];
  /** Runs whose recorded counts and applied change-log rows disagree. */
  readonly changeLogErrors: string[];
  /** Changes a clean dry run still finds: what faults left undone. */
  readonly pendingChanges: number;
}

/**
 * Reads the IdP through the real connector with no faults, and compares the tenant's tables
 * with its projection: users and their attributes, access and active flags, groups,
 * memberships and locks; no duplicate rows; every run's counts equal its applied change
 * rows; and a dry run plans nothing. `keptActive` are the external ids the scenario never
 * took out of scope or deactivated since `since`: any deprovision of one of them by a run
 * queued from then on is wrongful.
 */
export async function checkConvergence(
  db: Db,
  config: Config,
  integrationId: string,
  keptActive: Iterable<string> = [],
  /** Only runs queued from then on count for wrongful deprovisions (a scenario's round). */
  since = new Date(0),
): Promise<ConvergenceReport> {
  const service = new IntegrationService(db, config);
  const integration = await service.get(integrationId);
  const snapshot = await createConnector(integration, await service.credentials(integrationId)).readSnapshot();
  const mismatches = await compareState(db, integration.tenantId, integrationId, integration.deprovisionMode, snapshot);

  const kept = new Set(keptActive);
  const deprovisioned = await db
    .selectFrom('run_changes as c')
    .innerJoin('runs as r', 'r.id', 'c.run_id')
    .select('c.external_id')
    .where('r.integration_id', '=', integrationId)
    .where('c.kind', '=', 'user.deprovisioned')
    .where('c.state', '=', 'applied')
    .where('r.queued_at', '>=', since)
    .execute();
  const wrongfulDeprovisions = deprovisioned.map((d) => d.external_id).filter((id) => kept.has(id));

  const changeLogErrors = await checkChangeLog(db, integrationId);
  const dry = await runNow({ db, config }, integrationId, { dryRun: true });
  return { mismatches, wrongfulDeprovisions, changeLogErrors, pendingChanges: dry.status === 'succeeded' ? totalChanges(dry.counts ?? {}) : -1 };
}

async function compareState(
  db: Db,
  tenantId: string,
  integrationId: string,
  mode: string,
  snapshot: Snapshot,
): Promise<string[]> {
  const problems: string[] = [];
  const access = await db
    .selectFrom('accounts as ta')
    .innerJoin('users as u', 'u.id', 'ta.user_id')
    .select(['ta.id', 'ta.external_id', 'ta.user_id', 'u.user_name as global_name', 'ta.user_name', 'ta.email', 'ta.given_name', 'ta.family_name', 'ta.display_name', 'ta.active'])
    .where('ta.integration_id', '=', integrationId)
    .execute()
    .then((rows) => rows.map((r) => ({ ...r, external_id: r.external_id as string })));
  const locked = new Set(
    (await db.selectFrom('locks').select('external_id').where('tenant_id', '=', tenantId).where('integration_id', '=', integrationId).execute()).map((l) => l.external_id),
  );
  const byExternal = new Map(access.map((a) => [a.external_id, a]));
  if (byExternal.size !== access.length) problems.push('duplicate tenant access rows');

  // An active user has access; an inactive one keeps the access it had only in suspend mode
  // (one never provisioned is not created just to be suspended).
  const hasAccess = (id: string) => !!snapshot.users.get(id)?.active || (mode === 'suspend' && byExternal.has(id));
  for (const user of snapshot.users.values()) {
    const row = byExternal.get(user.externalId);
    if (!row) {
      if (user.active) problems.push(`user ${user.userName}: missing`);
      continue;
    }
    if (!hasAccess(user.externalId)) problems.push(`user ${user.userName}: still has access after deprovision (${mode})`);
    for (const [field, want, got] of [
      ['userName', user.userName, row.user_name],
      ['globalUserName', user.userName.toLowerCase(), row.global_name.toLowerCase()],
      ['email', user.email, row.email],
      ['givenName', user.givenName, row.given_name],
      ['familyName', user.familyName, row.family_name],
      ['displayName', user.displayName, row.display_name],
      ['active', user.active, row.active],
    ] as const) {
      if (want !== got) problems.push(`user ${user.userName}: ${field} is ${JSON.stringify(got)}, the IdP says ${JSON.stringify(want)}`);
    }
  }
  for (const row of access) {
    if (!snapshot.users.has(row.external_id)) {
      if (mode !== 'suspend') problems.push(`user ${row.user_name}: out of scope but still has access`);
      else if (row.active) problems.push(`user ${row.user_name}: out of scope but active`);
    }
    if (row.active === locked.has(row.external_id)) problems.push(`user ${row.user_name}: active=${row.active} but locked=${locked.has(row.external_id)}`);
  }

  const groups = await db.selectFrom('groups').select(['id', 'external_id', 'name']).where('integration_id', '=', integrationId).execute();
  const groupIds = new Map(groups.map((g) => [g.id, g.external_id]));
  
  const groupRows = new Map(groups.map((g) => [g.external_id, g]));
  if (groupRows.size !== groups.length) problems.push('duplicate group rows');
  for (const g of snapshot.groups.values()) {
    const row = groupRows.get(g.externalId);
    if (!row) problems.push(`group ${g.name}: missing`);
    else if (row.name !== g.name) problems.push(`group ${g.name}: named ${row.name}`);
  }
  for (const row of groups) if (!snapshot.groups.has(row.external_id)) problems.push(`group ${row.name}: deleted in the IdP but still here`);

  const userExternal = new Map(access.map((a) => [a.id, a.external_id]));
  const members = await db
    .selectFrom('group_memberships')
    .select(['group_id', 'account_id'])
    .where('group_id', 'in', groups.length ? groups.map((g) => g.id) : ['00000000-0000-0000-0000-000000000000'])
    .execute();
  const have = new Set(members.map((m) => `${groupIds.get(m.group_id)}|${userExternal.get(m.account_id) ?? `unknown account ${m.account_id}`}`));
  const want = new Set<string>();
  for (const [groupId, users] of snapshot.memberships) {
    for (const userId of users) if (hasAccess(userId)) want.add(`${groupId}|${userId}`);
  }
  for (const m of want) if (!have.has(m)) problems.push(`membership ${m}: missing`);
  // Memberships mirror the IdP in every mode (SPEC "Group").
  for (const m of have) if (!want.has(m)) problems.push(`membership ${m}: not in the IdP`);

  const duplicateUsers = await sql<{ n: number }>`select count(*)::int as n from (select user_name_key from users group by 1 having count(*) > 1) d`.execute(db);
  if (duplicateUsers.rows[0]!.n > 0) problems.push(`${duplicateUsers.rows[0]!.n} global users duplicated`);
  return problems;
}

/** Every finished run's counts must equal the applied change rows it wrote, kind by kind. */
async function checkChangeLog(db: Db, integrationId: string): Promise<string[]> {
  const runs = await db.selectFrom('runs').select(['id', 'status', 'counts', 'dry_run']).where('integration_id', '=', integrationId).execute();
  const rows = await db
    .selectFrom('run_changes as c')
    .innerJoin('runs as r', 'r.id', 'c.run_id')
    .select(['c.run_id', 'c.kind', (eb) => eb.fn.countAll<string>().as('n')])
    .where('r.integration_id', '=', integrationId)
    .where('c.state', '=', 'applied')
    .groupBy(['c.run_id', 'c.kind'])
    .execute();
  const logged = new Map(rows.map((r) => [`${r.run_id}|${r.kind}`, Number(r.n)]));
  const errors: string[] = [];
  for (const run of runs) {
    if (run.dry_run || !run.counts) continue;
    for (const kind of PLAN_KINDS) {
      const counted = run.counts[kind] ?? 0;
      const inLog = logged.get(`${run.id}|${CHANGE_KINDS[kind]}`) ?? 0;
      if (counted !== inLog) errors.push(`run ${run.id} (${run.status}): ${kind} counted ${counted}, change log has ${inLog}`);
    }
  }
  return errors;
}
