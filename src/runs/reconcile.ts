import type { Config } from '../config.js';
import { IdpReadError, type SnapshotSource } from '../connectors/connector.js';
import { type ConnectorSettings, createConnector } from '../connectors/index.js';
import { type Plan, type PlanCounts, addCounts, plan as diff, planCounts, totalChanges } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import { gate } from '../core/safety.js';
import { SnapshotError, completeSnapshot } from '../core/snapshot.js';
import type { LocalState, Snapshot } from '../core/model.js';
import pRetry from 'p-retry';
import { applyPlan, recordPlan } from '../apply/apply-plan.js';
import { DecryptionError } from '../crypto.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import type { Integration } from '../db/integration.repository.js';
import { RunRepository, type RunSummary } from '../db/run.repository.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { type Credentials, scrubCredentials } from '../integrations/credentials.js';
import type { Logger } from '../log.js';

/** How often every group's members are read in full, whatever their versions say. */
const FULL_MEMBER_READ_EVERY_MS = 24 * 3_600_000;

/** Changes after which a run refreshes Postgres's statistics (see DirectoryRepository.refreshStatistics). */
const LARGE_WRITE = 10_000;

export interface ReconcileDeps {
  readonly db: Db;
  readonly config: Config;
  readonly log: Logger;
  /** Tests swap in their own connector (fault injection); production builds one per provider. */
  readonly connectorFor?: (integration: Integration, credentials: Credentials) => SnapshotSource;
  readonly connectorSettings?: ConnectorSettings;
  readonly heartbeatMs?: number;
  readonly batchSize?: number;
  /** Called after each applied batch; crash tests throw here. */
  readonly afterBatch?: () => Promise<void> | void;
}

export type ReconcileOutcome =
  | { readonly kind: 'finished'; readonly run: RunSummary }
  | { readonly kind: 'busy' }
  | { readonly kind: 'skipped'; readonly reason: string };

/**
 * One run, start to end: claim it, read the whole scope, diff against the tenant's state,
 * apply (or record, for a dry run), and record the outcome. Failures of the IdP, of its data
 * or of the stored credentials end the run as `failed` with a sentence saying why, and change
 * nothing; anything else (Postgres gone) is thrown for the queue to retry.
 */
export async function reconcile(deps: ReconcileDeps, runId: string): Promise<ReconcileOutcome> {
  const runs = new RunRepository(deps.db);
  const claim = await runs.claim(runId);
  if (claim.kind === 'busy') return { kind: 'busy' };
  if (claim.kind === 'missing') return { kind: 'skipped', reason: `run ${runId} does not exist` };
  if (claim.kind === 'finished') return { kind: 'skipped', reason: `run ${runId} already ${claim.run.status}` };
  const run = claim.run;
  const log = deps.log.child({ runId, integrationId: run.integrationId });
  const started = Date.now();
  const stats: Record<string, number> = {};
  // A run taken over from an attempt that died keeps what that attempt committed.
  const prior = await runs.appliedCounts(runId);
  let applied: PlanCounts = prior;

  // What the heartbeat reports: the connector's counters while reading, then changes applied.
  let progress: () => Record<string, number> = () => ({});
  const heartbeat = setInterval(() => {
    runs.heartbeat(runId, progress()).catch((error: unknown) => log.warn({ err: error }, 'heartbeat failed'));
  }, deps.heartbeatMs ?? 1_000);
  try {
    const integrations = new IntegrationService(deps.db, deps.config);
    const integration = await integrations.get(run.integrationId);
    if (!integration.enabled) return await fail(runs, runId, 'the integration is disabled', stats, applied);

    let credentials: Credentials;
    try {
      credentials = await integrations.credentials(integration.id);
    } catch (error) {
      if (error instanceof DecryptionError) return await fail(runs, runId, `cannot read the integration's credentials: ${error.message}`, stats, applied);
      throw error;
    }
    const connector = deps.connectorFor
      ? deps.connectorFor(integration, credentials)
      : createConnector(integration, credentials, deps.connectorSettings);

    log.info({ provider: integration.provider, dryRun: run.dryRun }, 'run started');
    progress = () => ({ reading: 1, requests: connector.stats.requests, records: connector.stats.records });
    const directory = new DirectoryRepository(deps.db);
    const policy: Policy = { deprovisionMode: integration.deprovisionMode };
    const readStart = Date.now();
    let snapshot: Snapshot;
    let planned: Plan;
    let local: LocalState;
    let activeUsers: number;
    try {
      snapshot = await connector.readSnapshot(undefined, {
        membersVersions: await directory.loadMemberVersions(integration.id, FULL_MEMBER_READ_EVERY_MS),
      });
      [local, activeUsers] = await Promise.all([directory.loadLocalState(integration.id), directory.countActiveUsers(integration.tenantId)]);
      planned = diff(local, completeSnapshot(snapshot, local), policy);
      const entering = [...planned.usersCreated, ...planned.usersReprovisioned].map((u) => u.externalId);
      if (snapshot.unreadMembers && entering.length > 0) {
        // Users entering the scope may be members of groups that were not re-read: ask for their
        // groups (one request each), or read every group again if the connector cannot.
        if (connector.readGroupsOf) {
          planned = diff(local, completeSnapshot(snapshot, local, await connector.readGroupsOf(entering)), policy);
        } else {
          snapshot = await connector.readSnapshot();
          planned = diff(local, snapshot, policy);
        }
      }
    } catch (error) {
      scrubCredentials(error, credentials);
      if (!(error instanceof IdpReadError || error instanceof SnapshotError)) throw error;
      Object.assign(stats, connector.stats, { readMs: Date.now() - readStart });
      log.warn({ err: error.message }, 'IdP read failed; nobody deprovisioned');
      return await fail(runs, runId, `${error.message}. Nothing was changed.`, stats, applied);
    }
    Object.assign(stats, connector.stats, {
      readMs: Date.now() - readStart,
      idpUsers: snapshot.users.size,
      idpGroups: snapshot.groups.size,
      membersSkipped: snapshot.unreadMembers?.size ?? 0,
    });

    const applyStart = Date.now();
    const appliedSoFar: Partial<Record<string, number>> = {};
    progress = () => ({
      ...stats,
      planned: totalChanges(planCounts(planned)),
      applied: Object.values(appliedSoFar).reduce((n: number, c) => n + (c ?? 0), 0),
    });
    if (run.dryRun) {
      await recordPlan(deps.db, runId, planned, policy);
      applied = planCounts(planned);
    } else {
      const approvedRuns = run.approvesRunId ? await runs.heldRunsUpTo(run.approvesRunId) : [];
      const held = await runs.heldKeysByRun(integration.id);
      const keysOf = (include: (runId: string) => boolean) =>
        new Set([...held].flatMap(([heldRunId, keys]) => (include(heldRunId) ? [...keys] : [])));
      const approved = keysOf((id) => approvedRuns.includes(id));
      const pending = new Set([...keysOf((id) => !approvedRuns.includes(id))].filter((k) => !approved.has(k)));
      const gated = gate(planned, {
        thresholdPercent: integration.thresholdPercent,
        activeUsers,
        snapshotUsers: snapshot.users.size,
        pending,
        approved,
      });
      applied = addCounts(prior, await applyPlan(
        deps.db,
        { tenantId: integration.tenantId, integrationId: integration.id, runId },
        gated.apply,
        policy,
        {
          batchSize: deps.batchSize,
          afterBatch: async (kind, count) => {
            appliedSoFar[kind] = count;
            await deps.afterBatch?.();
          },
        },
      ));
      if (totalChanges(applied) >= LARGE_WRITE) await directory.refreshStatistics();
      await recordPlan(deps.db, runId, gated.held, policy);
      await runs.recordStale(runId, gated.stale, run.approvesRunId);
      if (run.approvesRunId) {
        const covered = await runs.heldRunsCoveredBy(integration.id, approved);
        await runs.markApproved([...new Set([...approvedRuns, ...covered])], runId);
      }
      const heldCount = totalChanges(planCounts(gated.held));
      if (heldCount > 0) {
        stats.held = heldCount;
        stats.applyMs = Date.now() - applyStart;
        stats.totalMs = Date.now() - started;
        const heldReason = `${heldCount} removals wait for approval (\`dirsync run approve ${runId}\`): ${gated.reasons.join('; ')}.`;
        // Membership versions are not recorded: with removals held, the members are not as read.
        await runs.finish(runId, { status: 'held', counts: applied, stats, heldReason });
        log.warn({ counts: applied, held: heldCount, reasons: gated.reasons }, 'run held for approval');
        return { kind: 'finished', run: (await runs.find(runId))! };
      }
      if (gated.stale.length > 0) stats.approvedStale = gated.stale.length;
      // Everything read was applied: next time, groups whose membership version is unchanged need not be re-read.
      await directory.recordMemberVersions(
        integration.id,
        [...snapshot.groups.values()].flatMap((g) =>
          g.membersVersion && !snapshot.unreadMembers?.has(g.externalId) ? [{ externalId: g.externalId, version: g.membersVersion }] : [],
        ),
      );
    }
    stats.applyMs = Date.now() - applyStart;
    stats.totalMs = Date.now() - started;
    await runs.finish(runId, { status: 'succeeded', counts: applied, stats });
    log.info({ counts: applied, stats }, 'run succeeded');
    return { kind: 'finished', run: (await runs.find(runId))! };
  } catch (error) {
    // Postgres went away (or anything unforeseen): the queue retries the job; let the retry
    // take the run over at once. Postgres gets a few seconds to come back; after that the run
    // is taken over once its heartbeat is stale.
    await pRetry(() => runs.abandonAttempt(runId, (error as Error).message), { retries: 5, minTimeout: 200, maxTimeout: 2_000 }).catch(() => {});
    log.warn({ err: (error as Error).message }, 'run attempt stopped; the queue retries it');
    throw error;
  } finally {
    clearInterval(heartbeat);
  }
}

async function fail(
  runs: RunRepository,
  runId: string,
  error: string,
  stats: Record<string, number>,
  counts: PlanCounts,
): Promise<ReconcileOutcome> {
  // Messages quote IdP values, and Postgres cannot store a NUL in text: the run would never be recorded as failed.
  await runs.finish(runId, { status: 'failed', counts, stats, error: error.replaceAll('\0', '\\0') });
  return { kind: 'finished', run: (await runs.find(runId))! };
}
