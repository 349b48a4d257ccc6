import type { FastifyInstance } from 'fastify';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import type { Database } from '../../src/db/schema.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { zeroCounts } from '../../src/core/plan.js';
import { createTestDatabase, testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';
import { oktaDelivery } from '../support/webhook-bodies.js';

let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let okta: FakeOkta;
let config: ReturnType<typeof testConfig>;
/** SQL the server sent, in order (the server's database handle logs every query here). */
const queries: string[] = [];
let pool: pg.Pool;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
  pool = new pg.Pool({ connectionString: created.url, max: 4 });
  const logged: Db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (event) => void queries.push(event.query.sql) });
  ({ app, close } = await startTestServer(logged, config));
  okta = await new FakeOkta().start();
  const apps = okta.addApp('0oaM');
  for (let i = 0; i < 3; i++) apps.users.add(okta.addUser(`u${i}@metrics.test`).id);
});
afterAll(async () => {
  await close();
  await pool.end();
  await okta.stop();
  await dropDb();
});

const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Every metric family in an exposition: name -> type. */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('/metrics', () => {
  it('follows Prometheus naming: counters end in _total, units in names, default metrics without a double prefix', async () => {
    const text = await scrape();
    const all = families(text);
    for (const [name, type] of all) {
      expect(name).toMatch(/^[a-z_][a-z0-9_]*$/);
      if (type === 'counter') expect(name, name).toMatch(/_total$/);
      // prom-client's own nodejs_active_*_total are gauges; ours follow the rule.
      else if (name.startsWith('dirsync_')) expect(name, name).not.toMatch(/_total$/);
      expect(name).not.toMatch(/process_process|dirsync_process_|dirsync_nodejs_/);
    }
    // Node's defaults under their standard names.
    expect(all.get('process_cpu_seconds_total')).toBe('counter');
    expect(all.get('process_resident_memory_bytes')).toBe('gauge');
    expect(all.has('nodejs_eventloop_lag_seconds')).toBe(true);
    for (const name of ['dirsync_runs_finished_total', 'dirsync_changes_applied_total', 'dirsync_idp_requests_total', 'dirsync_records_skipped_total', 'dirsync_webhook_deliveries_total']) {
      expect(all.get(name), name).toBe('counter');
    }
    expect(all.get('dirsync_integration_last_success_timestamp_seconds')).toBe('gauge');
    expect(all.get('dirsync_integration_last_run_status')).toBe('gauge');
    expect(all.get('dirsync_http_request_duration_seconds')).toBe('histogram');
    expect(all.get('dirsync_run_duration_seconds')).toBe('histogram');
    expect(all.get('dirsync_queue_jobs')).toBe('gauge');
  });

  it('shows each integration\'s last success and last run status, with bounded labels', async () => {
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaM' });
    const other = await createOktaIntegration(db, config, okta, { appId: '0oaM' });
    const before = Date.now() / 1000;
    expect((await runNow({ db, config }, t.integrationId)).status).toBe('succeeded');
    // How full the org's rate-limit buckets got during the last run: 150 of 600 spent.
    const { rateLimit } = okta;
    okta.rateLimit = { limit: 600, remaining: 450 };
    try {
      expect((await runNow({ db, config }, t.integrationId)).stats).toMatchObject({ rateLimitPeakPercent: 25 });
      expect(sample(await scrape(), `dirsync_idp_rate_limit_peak_ratio{integration_id="${t.integrationId}",tenant="${t.tenantSlug}",provider="okta"}`)).toBe(0.25);
    } finally {
      okta.rateLimit = rateLimit;
    }
    // A later failed run: the status says failed, the last success stays.
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(t.integrationId, 'manual', false);
    await runs.finish(run.id, { status: 'failed', counts: zeroCounts(), stats: {}, error: 'Okta answered 401' });
    // A dry run is not the integration's last run.
    const dry = await runs.trigger(t.integrationId, 'manual', true);
    await runs.finish(dry.run.id, { status: 'succeeded', counts: zeroCounts(), stats: {} });

    const text = await scrape();
    const labels = (id: string, slug: string) => `integration_id="${id}",tenant="${slug}",provider="okta"`;
    const success = sample(text, `dirsync_integration_last_success_timestamp_seconds{${labels(t.integrationId, t.tenantSlug)}}`);
    expect(success).toBeGreaterThanOrEqual(Math.floor(before) - 1);
    expect(success).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(sample(text, `dirsync_integration_last_run_status{${labels(t.integrationId, t.tenantSlug)},status="failed"}`)).toBe(1);
    expect(sample(text, `dirsync_integration_last_run_status{${labels(t.integrationId, t.tenantSlug)},status="succeeded"}`)).toBe(0);
    // Never ran: no last success, every status 0.
    expect(text).not.toContain(`dirsync_integration_last_success_timestamp_seconds{${labels(other.integrationId, other.tenantSlug)}}`);
    for (const status of ['succeeded', 'failed', 'held']) {
      expect(text).toContain(`dirsync_integration_last_run_status{${labels(other.integrationId, other.tenantSlug)},status="${status}"} 0`);
    }
    // Only these labels: nothing that grows with runs, users or time.
    for (const m of text.matchAll(/^dirsync_integration_\w+\{([^}]*)\}/gm)) {
      const keys = [...m[1]!.matchAll(/(\w+)="/g)].map((k) => k[1]);
      expect(keys.filter((k) => !['integration_id', 'tenant', 'provider', 'status'].includes(k!))).toEqual([]);
    }
  });

  it('counts where facts are recorded, not from what the tables hold now', async () => {
    const series = 'dirsync_webhook_deliveries_total{source="okta",outcome="ignored"}';
    const runsSeries = 'dirsync_runs_finished_total{status="failed",trigger="manual",dry_run="false"}';
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaM' });
    const before = await scrape();
    const { webhookSecret } = await new IntegrationService(db, config).rotateWebhookSecret(t.integrationId);
    const delivered = await app.inject({ method: 'POST', url: `/webhooks/${t.integrationId}`, headers: { authorization: webhookSecret }, payload: oktaDelivery([{ eventType: 'user.session.start' }]) });
    expect(delivered.json()).toEqual({ outcome: 'ignored' });
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(t.integrationId, 'manual', false);
    await runs.finish(run.id, { status: 'failed', counts: zeroCounts(), stats: { requests: 4, retries: 1 }, error: 'Okta is away' });
    const counted = await scrape();
    expect(sample(counted, series) - sample(before, series)).toBe(1);
    expect(sample(counted, runsSeries) - sample(before, runsSeries)).toBe(1);

    await new IntegrationService(db, config).delete(t.integrationId);
    expect(await db.selectFrom('webhook_deliveries').where('integration_id', '=', t.integrationId).select('id').execute()).toEqual([]);
    const after = await scrape();
    expect(sample(after, series)).toBe(sample(counted, series));
    expect(sample(after, runsSeries)).toBe(sample(counted, runsSeries));
    // Counted in Postgres, not in this server: a fresh one (a restart) shows the same.
    const fresh = await startTestServer(db, testConfig({ DATABASE_URL: config.databaseUrl }));
    try {
      const restarted = (await fresh.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(sample(restarted, series)).toBe(sample(counted, series));
      expect(sample(restarted, runsSeries)).toBe(sample(counted, runsSeries));
    } finally {
      await fresh.close();
    }
  });

  it('labels HTTP requests with route templates, never raw URLs', async () => {
    const id = '6f1c2b3a-1111-4222-8333-444455556666';
    await app.inject({ method: 'GET', url: `/api/v1/integrations/${id}` });
    await app.inject({ method: 'POST', url: `/webhooks/${id}`, payload: {} });
    await app.inject({ method: 'GET', url: '/no/such/page-7d3e9?secret=x' });
    await app.inject({ method: 'GET', url: '/healthz' });
    const text = await scrape();
    const routes = [...text.matchAll(/^dirsync_http_request_duration_seconds_count\{([^}]*)\}/gm)].map((m) => m[1]!);
    expect(routes.length, routes.join('\n')).toBeGreaterThan(0);
    expect(text).not.toContain(id);
    expect(text).not.toContain('page-7d3e9');
    expect(routes.join('\n')).toMatch(/method="GET",route="\/api\/v1\/integrations\/:id",status_code="\d+"/);
    expect(routes.join('\n')).toMatch(/method="GET",route="\(unmatched\)",status_code="404"/);
    // No worker runs beside this server: /healthz says degraded (503), and is labelled all the same.
    expect(routes.join('\n')).toMatch(/method="GET",route="\/healthz",status_code="(200|503)"/);
    expect(routes.join('\n')).toMatch(/method="POST",route="\/webhooks\/:id",status_code="\d+"/);
    for (const r of routes) expect(r).toMatch(/^method="[A-Z]+",route="(\(unmatched\)|\/[^"?]*)",status_code="\d{3}"$/);
  });

  it('reads no table in full per scrape: counters from their own rows, integrations through indexes', async () => {
    await scrape();
    queries.length = 0;
    await scrape();
    // Flushing the webhook deliveries counted in memory (none here), the counters, the integrations.
    expect(queries.length).toBeLessThanOrEqual(3);
    for (const q of queries) {
      expect(q).not.toMatch(/from\s+"?webhook_deliveries|from\s+"?run_changes/i);
      expect(q).not.toMatch(/count\(/i);
    }
    // The runs read per integration is an index lookup, however long the history.
    const health = queries.find((q) => q.includes('lateral'))!;
    const plan = await db.transaction().execute(async (trx) => {
      await sql`set local enable_seqscan = off`.execute(trx);
      const { rows } = await sql.raw<{ 'QUERY PLAN': string }>(`explain ${health}`).execute(trx);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('runs_last_finished_idx');
    expect(plan).toContain('runs_last_succeeded_idx');
    expect(plan).not.toMatch(/Seq Scan on runs/);
  });
});
