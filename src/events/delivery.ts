import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { type Attempt, EndpointRepository } from '../db/endpoint.repository.js';
import { EventRepository } from '../db/event.repository.js';
import type { Logger } from '../log.js';
import { EndpointService } from './endpoint.service.js';
import { type Cursor, type DirsyncEvent, compareCursors, parseCursor } from './event.js';
import { type Egress, egressFor, isEgressRefusal } from '../egress.js';
import { outboundRefusal } from '../outbound.js';
import { ConfigError } from '../config.js';
import { DecryptionError } from '../crypto.js';

/** How long an endpoint may fail before it is disabled (SPEC: retried for up to 3 days). */
export const GIVE_UP_AFTER_MS = 3 * 86_400_000;

/** Per request: an endpoint that takes longer is a failed attempt. */
export const DELIVERY_TIMEOUT_MS = 10_000;

/** Characters of an answer kept, for `endpoint deliveries`: never more. */
const EXCERPT = 200;

/** Events read per page while catching up (each is sent on its own, in order). */
const PAGE = 200;

/**
 * When the next attempt is due after `failures` failed attempts of one event: 5 s, 10 s,
 * 20 s, ... doubling, at most an hour apart.
 */
export function retryDelayMs(failures: number): number {
  return Math.min(3_600_000, 5_000 * 2 ** Math.max(0, failures - 1));
}

export type DeliveryOutcome =
  /** Everything up to the feed's end was delivered (or the endpoint is gone or disabled). */
  | { readonly kind: 'idle'; readonly delivered: number }
  /** The next event failed: try again at `at`. */
  | { readonly kind: 'retry'; readonly delivered: number; readonly at: Date }
  /** It failed for longer than GIVE_UP_AFTER_MS and was disabled. */
  | { readonly kind: 'disabled'; readonly delivered: number; readonly reason: string };

export interface DeliveryOptions {
  /** Events sent at most in this call (default 10,000); the next call goes on. */
  readonly maxEvents?: number;
  /** Per request (default DELIVERY_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Send a waiting retry now rather than when it is due (tests). */
  readonly ignoreBackoff?: boolean;
}

export interface DeliveryDeps {
  readonly db: Db;
  readonly config: Config;
  readonly log: Logger;
  /** Where deliveries may connect; egressFor(config) unless a test brings its own resolver. */
  readonly egress?: Egress;
}

/**
 * Delivers an endpoint's events in cursor order (so in order per tenant), one request each,
 * at least once: an event is sent again until the endpoint answers 2xx, and the endpoint's
 * position moves past it only then, so a worker killed mid-way sends it again (receivers
 * deduplicate by `webhook-id`, the event id). Each request is signed per Standard Webhooks
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, one
 * signature per live secret during a rotation's grace) with the `standardwebhooks` library.
 *
 * Stops at the first failure and says when to try again (retryDelayMs); an endpoint failing
 * for GIVE_UP_AFTER_MS is disabled with the reason.
 */
export async function deliverPending(deps: DeliveryDeps, endpointId: string, options: DeliveryOptions = {}): Promise<DeliveryOutcome> {
  // One deliverer per endpoint, whatever the queue does (Redis restarted empty, a stalled job
  // taken over, two workers): the second finds the lock taken and leaves it to the first.
  return deps.db.connection().execute(async (conn) => {
    const key = sql`hashtextextended(${`dirsync.deliver:${endpointId}`}, 0)`;
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${key}) as locked`.execute(conn);
    if (!rows[0]?.locked) return { kind: 'idle', delivered: 0 } as const;
    try {
      return await deliverLocked(deps, endpointId, options);
    } finally {
      await sql`select pg_advisory_unlock(${key})`.execute(conn);
    }
  });
}

async function deliverLocked(deps: DeliveryDeps, endpointId: string, options: DeliveryOptions): Promise<DeliveryOutcome> {
  const service = new EndpointService(deps.db, deps.config);
  const endpoints = new EndpointRepository(deps.db);
  const endpoint = await endpoints.find(endpointId);
  if (!endpoint || !endpoint.enabled) return { kind: 'idle', delivered: 0 };
  // Not sent where this process may not send (a URL stored under DIRSYNC_ALLOW_HTTP=true, say)
  // or with a secret it cannot read (sealed under another DIRSYNC_ENCRYPTION_KEY): a failed
  // attempt like any other, shown in `endpoint deliveries`, retried, in the end disabled.
  let signers: Webhook[] = [];
  let refused = outboundRefusal(endpoint.url, deps.config);
  try {
    signers = service.secrets(endpoint).map((secret) => new Webhook(secret));
  } catch (error) {
    if (!(error instanceof DecryptionError || error instanceof ConfigError)) throw error;
    refused ??= `the signing secret cannot be read (${error.message}): give this process the key it was sealed with, or \`dirsync endpoint rotate-secret ${endpoint.id} --grace 0\``;
  }
  const feed = new EventRepository(deps.db);
  let from: Cursor = endpoint.cursor;
  let failingSince = endpoint.failingSince;
  let delivered = 0;
  const max = options.maxEvents ?? 10_000;
  while (delivered < max) {
    const page = await feed.after({ after: from, limit: PAGE, ...(endpoint.tenantId && { tenantId: endpoint.tenantId }) });
    if (page.events.length === 0) {
      // Only other tenants' events were there: the cursor moves past them, not to be read again.
      if (compareCursors(page.next, from) > 0) await endpoints.recordAttempts(endpoint.id, from, page.next, [], 'no');
      break;
    }
    const attempts: Attempt[] = [];
    let to = from;
    for (const event of page.events) {
      if (endpoint.types && !endpoint.types.includes(event.type)) {
        to = parseCursor(event.cursor)!;
        continue;
      }
      // The first event not delivered may be waiting for its retry: not before it is due
      // (the backoff lives here, in Postgres, so no queue state can make a retry early).
      const previous = attempts.length === 0 ? await endpoints.deliveryOf(endpoint.id, event.id) : { attempts: 0, nextAttemptAt: null };
      if (previous.nextAttemptAt && previous.nextAttemptAt.getTime() > Date.now() && !options.ignoreBackoff) {
        return { kind: 'retry', delivered, at: previous.nextAttemptAt };
      }
      const result = refused ? { ok: false, statusCode: null, error: refused, excerpt: null } : await send(endpoint.url, event, signers, options.timeoutMs ?? DELIVERY_TIMEOUT_MS, deps.egress ?? egressFor(deps.config));
      if (result.ok) {
        attempts.push({ eventId: event.id, cursor: event.cursor, type: event.type, ok: true, statusCode: result.statusCode, error: null, responseExcerpt: result.excerpt, nextAttemptAt: null });
        to = parseCursor(event.cursor)!;
        delivered++;
        failingSince = null;
        continue;
      }
      const now = new Date();
      // A failure after a success starts a new count; the endpoint is given up on only after 3 days without one.
      const since = failingSince ?? now;
      const giveUp = now.getTime() - since.getTime() >= GIVE_UP_AFTER_MS;
      const failures = (attempts.length === 0 ? previous.attempts : (await endpoints.deliveryOf(endpoint.id, event.id)).attempts) + 1;
      const at = new Date(now.getTime() + retryDelayMs(failures));
      attempts.push({ eventId: event.id, cursor: event.cursor, type: event.type, ok: false, statusCode: result.statusCode, error: result.error, responseExcerpt: result.excerpt, nextAttemptAt: giveUp ? null : at });
      const still = await endpoints.recordAttempts(endpoint.id, from, to, attempts, failingSince === null ? 'starts' : 'continues');
      if (!still) return { kind: 'idle', delivered };
      if (giveUp) {
        const reason = `failed for more than 3 days (since ${since.toISOString()}); last: ${result.error ?? `HTTP ${result.statusCode}`}. Fix the receiver, then \`dirsync endpoint replay ${endpoint.id} --after ${to.txid}.${to.id}\``;
        await endpoints.disable(endpoint.id, reason);
        deps.log.warn({ endpointId: endpoint.id, reason }, 'endpoint disabled');
        return { kind: 'disabled', delivered, reason };
      }
      deps.log.info({ endpointId: endpoint.id, eventId: event.id, status: result.statusCode, err: result.error, retryAt: at.toISOString() }, 'delivery failed; will retry');
      return { kind: 'retry', delivered, at };
    }
    // Past the page's last event too, when the feed moved `next` beyond it (see EventRepository.after).
    if (compareCursors(page.next, to) > 0) to = page.next;
    // A replay moved the endpoint meanwhile: it wins; the next delivery starts from there.
    if (!(await endpoints.recordAttempts(endpoint.id, from, to, attempts, 'no'))) break;
    from = to;
  }
  return { kind: 'idle', delivered };
}

interface SendResult {
  readonly ok: boolean;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly excerpt: string | null;
}

async function send(url: string, event: DirsyncEvent, signers: readonly Webhook[], timeoutMs: number, egress: Egress): Promise<SendResult> {
  const body = JSON.stringify(event);
  const timestamp = new Date();
  const signature = signers.map((s) => s.sign(event.id, timestamp, body)).join(' ');
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'dirsync-webhooks',
        'webhook-id': event.id,
        'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
      dispatcher: egress.dispatcher,
    } as RequestInit);
    const excerpt = await readExcerpt(response);
    const ok = response.status >= 200 && response.status < 300;
    return { ok, statusCode: response.status, error: ok ? null : `HTTP ${response.status}`, excerpt };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string; message?: string } };
    // The refusal's sentence, not its code: the same whether anything listens there or not.
    if (isEgressRefusal(error)) return { ok: false, statusCode: null, error: e.cause?.message ?? e.message, excerpt: null };
    const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, statusCode: null, error: reason, excerpt: null };
  }
}

/** The first EXCERPT characters of an answer; the rest is not read, let alone stored. */
async function readExcerpt(response: Response): Promise<string | null> {
  if (!response.body) return null;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < EXCERPT * 4) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const text = Buffer.concat(chunks).toString('utf8').slice(0, EXCERPT);
  return text === '' ? null : text;
}
