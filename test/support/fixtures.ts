import type { RunTrigger } from '../../src/db/schema.js';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { type ReconcileDeps, reconcile } from '../../src/runs/reconcile.js';
import { silentLog, uniqueSlug } from './env.js';
import type { FakeAuthentik } from './fake-authentik.js';
import type { FakeOkta } from './fake-okta.js';

export interface TestIntegration {
  tenantId: string;
  tenantSlug: string;
  integrationId: string;
}

export async function createOktaIntegration(
  db: Db,
  config: Config,
  okta: FakeOkta,
  options: { appId?: string; tenantSlug?: string; deprovision?: string; threshold?: string } = {},
): Promise<TestIntegration> {
  const tenantSlug = options.tenantSlug ?? uniqueSlug();
  const tenants = new TenantRepository(db);
  const tenant = (await tenants.findBySlug(tenantSlug)) ?? (await tenants.create(tenantSlug, tenantSlug))!;
  const { integration } = await new IntegrationService(db, config).create({
    tenant: tenantSlug,
    provider: 'okta',
    baseUrl: okta.url,
    token: okta.token,
    oktaAppId: options.appId,
    deprovision: options.deprovision,
    threshold: options.threshold,
  });
  return { tenantId: tenant.id, tenantSlug, integrationId: integration.id };
}

export async function createAuthentikIntegration(
  db: Db,
  config: Config,
  ak: FakeAuthentik,
  options: { app?: string; tenantSlug?: string; deprovision?: string } = {},
): Promise<TestIntegration> {
  const tenantSlug = options.tenantSlug ?? uniqueSlug();
  const tenants = new TenantRepository(db);
  const tenant = (await tenants.findBySlug(tenantSlug)) ?? (await tenants.create(tenantSlug, tenantSlug))!;
  const { integration } = await new IntegrationService(db, config).create({
    tenant: tenantSlug,
    provider: 'authentik',
    baseUrl: ak.url,
    token: ak.token,
    authentikApp: options.app,
    deprovision: options.deprovision,
  });
  return { tenantId: tenant.id, tenantSlug, integrationId: integration.id };
}

type Deps = Omit<ReconcileDeps, 'log'> & { log?: ReconcileDeps['log'] };

/** Reconciles a recorded run in this process (no queue), as a worker that claimed it would, returning the finished run. */
export async function reconcileNow(deps: Deps, runId: string): Promise<RunSummary> {
  const outcome = await reconcile(
    { log: silentLog, connectorSettings: { retry: { retries: 1, minTimeoutMs: 5, maxTimeoutMs: 10 } }, ...deps },
    runId,
  );
  if (outcome.kind !== 'finished') throw new Error(`run ${runId} did not finish: ${JSON.stringify(outcome)}`);
  return outcome.run;
}

/** Approves a held run and runs the approval in this process, as `dirsync run approve` has the worker do. */
export async function approveNow(deps: Deps, heldRunId: string): Promise<RunSummary> {
  const runs = new RunRepository(deps.db);
  const approval = await runs.createApproval((await runs.find(heldRunId))!);
  return reconcileNow(deps, approval.id);
}

/** Records a run and reconciles it in this process (no queue), returning the finished run. */
export async function runNow(
  deps: Deps,
  integrationId: string,
  options: { dryRun?: boolean; trigger?: RunTrigger } = {},
): Promise<RunSummary> {
  const runs = new RunRepository(deps.db);
  const { run } = await runs.trigger(integrationId, options.trigger ?? 'manual', options.dryRun ?? false);
  return reconcileNow(deps, run.id);
}
