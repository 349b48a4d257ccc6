import type { WebhookOutcome, Provider } from '../db/schema.js';

/** One counter series' increments not yet added to Postgres. */
export interface PendingCount {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * Increments of a counter kept in Postgres, gathered in memory and added there in one
 * statement now and then (src/http/metrics.ts flushes them at each scrape and every few
 * seconds): a hot path such as webhook receiving pays nothing per request. A crash loses at
 * most the increments since the last flush: the counter undercounts, it never goes down.
 */
export class PendingCounts {
  private pending = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(readonly name: string) {}

  inc(labels: Record<string, string>, by = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.pending.get(key);
    if (entry) entry.value += by;
    else this.pending.set(key, { labels, value: by });
  }

  /** What is pending now, without taking it. */
  peek(): PendingCount[] {
    return [...this.pending.values()].map((e) => ({ name: this.name, labels: e.labels, value: e.value }));
  }

  /** Takes what is pending; hand it back with `restore` if it could not be stored. */
  take(): PendingCount[] {
    const taken = this.peek();
    this.pending = new Map();
    return taken;
  }

  restore(counts: readonly PendingCount[]): void {
    for (const c of counts) this.inc({ ...c.labels }, c.value);
  }
}

/** Webhook deliveries this process answered 200 (dirsync_webhook_deliveries_total), by source and outcome. */
export const webhookDeliveryCounts = new PendingCounts('dirsync_webhook_deliveries_total');

export function countDelivery(source: Provider, outcome: WebhookOutcome): void {
  webhookDeliveryCounts.inc({ source, outcome });
}
