import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/database.js';
import { type CounterTotal, MetricsRepository } from '../db/metrics.repository.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { runDuration } from '../runs/run-metrics.js';
import { scimRequestDuration } from '../scim/scim-metrics.js';
import { type PendingCount, webhookDeliveryCounts } from '../webhooks/delivery-counts.js';

/** How often increments gathered in memory are added to Postgres between scrapes. */
const FLUSH_EVERY_MS = 10_000;

/** Statuses the last-run gauge has a series for (one of them is 1 per integration that ran). */
const LAST_RUN_STATUSES = ['succeeded', 'failed', 'held'] as const;

/** Counters kept in Postgres, with their help and labels (README "Metrics" lists them). */
const PERSISTED_COUNTERS = {
  dirsync_runs_finished_total: { help: 'Runs that finished, by status, trigger and dry run', labelNames: ['status', 'trigger', 'dry_run'] },
  dirsync_changes_applied_total: { help: 'Changes applied by runs (dry runs excluded), by kind', labelNames: ['kind'] },
  dirsync_records_skipped_total: { help: 'IdP records runs skipped because they could not be taken as they are (warnings), by provider', labelNames: ['provider'] },
  dirsync_idp_requests_total: { help: 'Requests finished runs made to IdPs, retries among them, and 429 answers', labelNames: ['provider', 'kind'] },
  dirsync_webhook_deliveries_total: { help: 'Webhook deliveries accepted (answered 200), by source and outcome', labelNames: ['source', 'outcome'] },
} as const;

/**
 * Prometheus metrics, served at /metrics by the HTTP server.
 *
 * Where each number lives, and why:
 * - **Domain counters live in Postgres** (`metric_counters`: migrations/2026-11-30T0600-metric-counters.ts),
 *   bumped by a trigger where a run finishes; webhook deliveries, counted on the receiver's
 *   hot path in memory, are added there at each scrape and every FLUSH_EVERY_MS (a
 *   crash loses the last few seconds' increments: an undercount, never a decrease).
 *   `dirsync start` finishes runs in a worker thread, `dirsync worker` in another process,
 *   while /metrics is answered by the main thread of the HTTP process: an in-process counter
 *   would miss every run. Postgres is the one place every thread and process writes (a run
 *   is counted in the transaction that finishes it), so the counters never decrease: not
 *   when an integration and its runs are deleted (nothing references them), not across
 *   restarts, and every server process shows the same totals (but for another server's
 *   deliveries not yet flushed). A scrape sums a few rows per series.
 * - **Per-integration state is read from Postgres** at scrape time through partial indexes
 *   (the last finished and last succeeded run of each integration: one index entry each),
 *   never by aggregating the runs table. Cardinality: one series per integration (last
 *   success), three per integration (last-run status); integrations are configuration.
 * - **Per-process series are in-process**: HTTP requests (labelled with the route template,
 *   never the raw URL), SCIM request durations, run durations (the worker thread forwards its
 *   observations to the main thread: src/cli/serve.ts), Node's default metrics. They reset
 *   when the process restarts, as Prometheus expects of a process's own counters.
 * - Queue depth is read from Redis (BullMQ's job counts) at scrape time.
 */
export function createMetrics(deps: { db: Db; queue: DirsyncQueue }): Registry {
  const registry = new Registry();
  // Node's standard names (process_cpu_seconds_total, nodejs_heap_size_used_bytes, ...), unprefixed as dashboards expect.
  collectDefaultMetrics({ register: registry });
  registry.registerMetric(runDuration);
  registry.registerMetric(scimRequestDuration);
  const repository = new MetricsRepository(deps.db);

  // One flush and one query per scrape serve every persisted counter: the counters' collect() run together.
  let reading: Promise<CounterTotal[]> | undefined;
  const totals = () =>
    (reading ??= flushPendingCounts(repository)
      .then(() => repository.counterTotals())
      // Increments made since the flush show at once: the value only grows.
      .then((stored) => [...stored, ...webhookDeliveryCounts.peek()])
      .finally(() => (reading = undefined)));
  for (const [name, { help, labelNames }] of Object.entries(PERSISTED_COUNTERS)) {
    new Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      async collect() {
        const series = (await totals()).filter((t) => t.name === name);
        // The values come whole from Postgres, where they only grow.
        this.reset();
        for (const s of series) if (s.value > 0) this.inc(pick(s.labels, labelNames), s.value);
      },
    });
  }

  // Both gauges from one read of the integrations' state per scrape.
  let health: ReturnType<MetricsRepository['integrationHealth']> | undefined;
  const integrations = () => (health ??= repository.integrationHealth().finally(() => (health = undefined)));
  new Gauge({
    name: 'dirsync_integration_last_success_timestamp_seconds',
    help: "When the integration's last successful (not dry) run finished, in Unix seconds; absent until one succeeds",
    labelNames: ['integration_id', 'tenant', 'provider'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const i of await integrations()) {
        if (i.lastSuccessAt) this.set({ integration_id: i.integrationId, tenant: i.tenant, provider: i.provider }, i.lastSuccessAt.getTime() / 1000);
      }
    },
  });
  new Gauge({
    name: 'dirsync_integration_last_run_status',
    help: "The status of the integration's last finished (not dry) run: 1 for that status, 0 for the others; all 0 before its first",
    labelNames: ['integration_id', 'tenant', 'provider', 'status'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const i of await integrations()) {
        for (const status of LAST_RUN_STATUSES) {
          this.set({ integration_id: i.integrationId, tenant: i.tenant, provider: i.provider, status }, i.lastStatus === status ? 1 : 0);
        }
      }
    },
  });

  new Gauge({
    name: 'dirsync_idp_rate_limit_peak_ratio',
    help: "The fullest one of the IdP's rate-limit buckets was seen during the integration's last finished run (0 to 1; Okta's X-Rate-Limit headers, counting every client of the org): runs wait at DIRSYNC_RATE_LIMIT_SHARE",
    labelNames: ['integration_id', 'tenant', 'provider'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const i of await integrations()) {
        if (i.rateLimitPeakPercent !== null) this.set({ integration_id: i.integrationId, tenant: i.tenant, provider: i.provider }, i.rateLimitPeakPercent / 100);
      }
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

/** What a request is labelled with when no route matched: never its raw URL. */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * Serves /metrics on `app` and measures every request it answers, labelled with the route's
 * template (`/api/v1/integrations/:id`), never the URL, so the series stay bounded.
 */
export function registerMetrics(app: FastifyInstance, deps: { db: Db; queue: DirsyncQueue }): Registry {
  const registry = createMetrics(deps);
  const requests = new Histogram({
    name: 'dirsync_http_request_duration_seconds',
    help: 'HTTP requests answered by this process, by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    requests.observe(
      { method: request.method, route: request.routeOptions.url ?? UNMATCHED_ROUTE, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  const repository = new MetricsRepository(deps.db);
  const flush = () => flushPendingCounts(repository).catch(() => {});
  const flusher = setInterval(flush, FLUSH_EVERY_MS).unref();
  app.addHook('onClose', async () => {
    clearInterval(flusher);
    await flush();
  });
  app.get('/metrics', async (_request, response) => {
    response.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return registry;
}

/** Adds the in-memory increments to Postgres; on failure they stay pending for the next try. */
async function flushPendingCounts(repository: MetricsRepository): Promise<void> {
  const taken: PendingCount[] = webhookDeliveryCounts.take();
  try {
    await repository.addCounts(taken);
  } catch (error) {
    webhookDeliveryCounts.restore(taken);
    throw error;
  }
}

function pick(labels: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, labels[n] ?? '']));
}
