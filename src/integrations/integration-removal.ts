import { DESCRIBED_BEFORE, describePlan } from '../apply/apply-plan.js';
import { integrationRemovalPlan } from '../core/plan.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import type { Integration } from '../db/integration.repository.js';
import { IntegrationRepository } from '../db/integration.repository.js';
import { RunRepository } from '../db/run.repository.js';
import { lockApply } from '../runs/read-stamps.js';

/**
 * Deletes an integration in one transaction (with `accounts: 'delete'`, its accounts too, each
 * a `user.deleted` event, and the people only they linked: see integrationRemovalPlan), with the events of what that removes from its
 * tenant: `group.user_removed` for every membership and `group.deleted` for every group it
 * provisioned (with no run: `runId` null), recorded exactly as a run applying the same removals
 * would record them. Its accounts stay, unowned (no event: nothing about them changed for the
 * host app). Its runs and their change log go; events already in the feed stay until
 * DIRSYNC_RETENTION prunes them (migration 2026-11-30T0400, src/runs/retention.ts). Returns false if the
 * integration was already gone.
 */
export async function deleteIntegration(db: Db, integration: Integration, options: { accounts: 'keep' | 'delete' } = { accounts: 'keep' }): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    // Taken first: every applying transaction of the integration commits before its state is
    // read here, and none starts after (a membership's write holds no lock on the integration's
    // row: without this, one in flight would be deleted with no group.user_removed). Before the
    // row's lock, in the order applying transactions take the two.
    await lockApply(trx, integration.id, 'exclusive');
    const found = await new IntegrationRepository(trx).lockForDelete(integration.id);
    if (!found) return false;
    const local = await new DirectoryRepository(trx).loadLocalState(integration.id, integration.tenantId);
    const plan = integrationRemovalPlan(local, options);
    const runs = new RunRepository(trx);
    const scope = { runId: null, tenantId: integration.tenantId, integrationId: integration.id };
    const deprovisionMode = options.accounts === 'delete' ? 'delete' : integration.deprovisionMode;
    for (const batch of describePlan(plan, { deprovisionMode }, 2_000)) {
      // Described as a run applying them would be: a removed subject as it was (its rows are still here).
      const before = DESCRIBED_BEFORE.has(batch.kind) ? await runs.describeSubjects(integration.id, batch.changes) : undefined;
      await runs.recordApplied(scope, batch.changes, { ...(before && { before }) });
    }
    if (options.accounts === 'delete') await new DirectoryRepository(trx).deleteAccountsOf(integration.id);
    return new IntegrationRepository(trx).delete(integration.id);
  });
}
