import { sql } from 'kysely';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { PLAN_KINDS } from '../core/plan.js';
import type { Db } from '../db/database.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { runDuration } from '../runs/run-metrics.js';
import { scimRequestDuration } from '../scim/scim-metrics.js';


/**
 * Prometheus metrics. Totals come from Postgres at scrape time, so they are the same whichever
 * process (server, worker, start) is scraped and survive restarts; queue depth comes from
 * BullMQ; run durations from this process's worker.
 */
export function createMetrics(deps: { db: Db; queue: DirsyncQueue }): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dirsync_process_' });
  registry.registerMetric(runDuration);
  registry.registerMetric(scimRequestDuration);

  new Counter({
    name: 'dirsync_runs_total',
    help: 'Runs recorded, by status, trigger and dry run',
    labelNames: ['status', 'trigger', 'dry_run'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ status: string; trigger: string; dry_run: boolean; n: string }>`
        select status, trigger, dry_run, count(*) as n from runs group by 1, 2, 3`.execute(deps.db);
      this.reset();
      for (const r of rows) this.inc({ status: r.status, trigger: r.trigger, dry_run: String(r.dry_run) }, Number(r.n));
    },
  });

  new Counter({
    name: 'dirsync_changes_applied_total',
    help: 'Changes applied by runs (dry runs excluded), by kind',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const sums = PLAN_KINDS.map((k) => sql`coalesce(sum((counts->>${k})::bigint), 0)`.as(k));
      const row = await deps.db.selectFrom('runs').select(sums).where('dry_run', '=', false).executeTakeFirst();
      this.reset();
      for (const k of PLAN_KINDS) this.inc({ kind: k }, Number((row as Record<string, unknown> | undefined)?.[k] ?? 0));
    },
  });

  new Counter({
    name: 'dirsync_records_skipped_total',
    help: 'IdP records runs skipped because they could not be taken as they are (warnings), by provider',
    labelNames: ['provider'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ provider: string; n: string }>`
        select i.provider, coalesce(sum(jsonb_array_length(r.warnings)), 0) as n
        from runs r join integrations i on i.id = r.integration_id where not r.dry_run group by 1`.execute(deps.db);
      this.reset();
      for (const r of rows) this.inc({ provider: r.provider }, Number(r.n));
    },
  });

  new Counter({
    name: 'dirsync_idp_requests_total',
    help: 'Requests made to IdPs by runs, retries among them, and 429 answers',
    labelNames: ['provider', 'kind'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ provider: string; requests: string; retries: string; rate_limited: string }>`
        select i.provider, coalesce(sum((r.stats->>'requests')::bigint), 0) as requests,
          coalesce(sum((r.stats->>'retries')::bigint), 0) as retries,
          coalesce(sum((r.stats->>'rateLimited')::bigint), 0) as rate_limited
        from runs r join integrations i on i.id = r.integration_id group by 1`.execute(deps.db);
      this.reset();
      for (const r of rows) {
        this.inc({ provider: r.provider, kind: 'request' }, Number(r.requests));
        this.inc({ provider: r.provider, kind: 'retry' }, Number(r.retries));
        this.inc({ provider: r.provider, kind: 'rate_limited' }, Number(r.rate_limited));
      }
    },
  });

  new Counter({
    name: 'dirsync_webhook_deliveries_total',
    help: 'Webhook deliveries accepted, by source and outcome',
    labelNames: ['source', 'outcome'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ source: string; outcome: string; n: string }>`
        select source, outcome, count(*) as n from webhook_deliveries group by 1, 2`.execute(deps.db);
      this.reset();
      for (const r of rows) this.inc({ source: r.source, outcome: r.outcome }, Number(r.n));
    },
  });

  new Gauge({
    name: 'dirsync_queue_jobs',
    help: 'BullMQ jobs by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await deps.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
      this.reset();
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });

  return registry;
}
