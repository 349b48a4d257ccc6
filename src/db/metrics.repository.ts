import { sql } from 'kysely';
import type { Db } from './database.js';
import type { Provider, RunStatus } from './schema.js';

/** One series of a counter kept in Postgres. */
export interface CounterTotal {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** An integration's last finished (not dry) run and last success, for the per-integration gauges. */
export interface IntegrationHealth {
  readonly integrationId: string;
  readonly tenant: string;
  readonly provider: Provider;
  readonly lastStatus: Extract<RunStatus, 'succeeded' | 'failed' | 'held'> | null;
  readonly lastSuccessAt: Date | null;
  /** The fullest an IdP rate-limit bucket was seen during the last finished run, in percent (Okta); null when not known. */
  readonly rateLimitPeakPercent: number | null;
}

/**
 * What /metrics reads from Postgres. Every query is bounded by configuration, not history:
 * counters are a few rows per series (migration 2026-11-30T0600-metric-counters), and the
 * per-integration state reads one entry per integration from the runs_last_* partial indexes.
 */
export class MetricsRepository {
  constructor(private readonly db: Db) {}

  /** Every counter series, its shards summed. */
  async counterTotals(): Promise<CounterTotal[]> {
    const rows = await this.db
      .selectFrom('metric_counters')
      .select(['name', 'labels', sql<string>`sum(value)`.as('value')])
      .groupBy(['name', 'labels'])
      .execute();
    return rows.map((r) => ({ name: r.name, labels: r.labels, value: Number(r.value) }));
  }

  /** Adds increments gathered in memory (src/webhooks/delivery-counts.ts) to the counters, in one statement. */
  async addCounts(counts: readonly CounterTotal[]): Promise<void> {
    if (counts.length === 0) return;
    await sql`
      select metric_count(c.name, c.labels::jsonb, c.value)
      from unnest(${counts.map((c) => c.name)}::text[], ${counts.map((c) => JSON.stringify(c.labels))}::text[], ${counts.map((c) => c.value)}::bigint[]) as c (name, labels, value)
    `.execute(this.db);
  }

  async integrationHealth(): Promise<IntegrationHealth[]> {
    const { rows } = await sql<{ id: string; tenant: string; provider: Provider; last_status: IntegrationHealth['lastStatus']; last_success_at: Date | null; rate_peak: string | null }>`
      select i.id, t.slug as tenant, i.provider, last.status as last_status, ok.finished_at as last_success_at, last.stats ->> 'rateLimitPeakPercent' as rate_peak
      from integrations i
      join tenants t on t.id = i.tenant_id
      left join lateral (
        select status, stats from runs
        where integration_id = i.id and status in ('succeeded', 'failed', 'held') and not dry_run
        order by finished_at desc limit 1
      ) last on true
      left join lateral (
        select finished_at from runs
        where integration_id = i.id and status = 'succeeded' and not dry_run
        order by finished_at desc limit 1
      ) ok on true
    `.execute(this.db);
    return rows.map((r) => ({
      integrationId: r.id,
      tenant: r.tenant,
      provider: r.provider,
      lastStatus: r.last_status,
      lastSuccessAt: r.last_success_at,
      rateLimitPeakPercent: r.rate_peak === null || !Number.isFinite(Number(r.rate_peak)) ? null : Number(r.rate_peak),
    }));
  }
}
