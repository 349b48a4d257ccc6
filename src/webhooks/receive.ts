import { hashSecret, secretMatchesEither } from '../crypto.js';
import type { Db } from '../db/database.js';
import type { Provider } from '../db/schema.js';
import { isUuid, subjectRows } from '../db/run.repository.js';
import { WebhookRepository } from '../db/webhook.repository.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { QueueUnavailableError, type RunWish, queueRun } from '../runs/trigger.js';
import { withTimeout } from '../queue/timeout.js';
import { countDelivery } from './delivery-counts.js';
import { MalformedWebhookError, type WebhookSignal, readAuthentikNotification, readOktaDelivery } from './events.js';

export interface WebhookDeps {
  readonly db: Db;
  readonly queue: DirsyncQueue;
  /** The queue's connection: while it is not ready (after a short wait), deliveries are refused. */
  readonly redis: Redis;
  readonly log: Logger;
}

/** How long a delivery may wait for the queue before it is refused with 503 (Okta gives up after 3 s). */
const ENQUEUE_TIMEOUT_MS = 1_500;

export interface WebhookReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

const reply = (status: number, body: Record<string, unknown>): WebhookReply => ({ status, body });

/** The secret from `Authorization: <secret>` (an Okta event hook) or `Authorization: Bearer <secret>`. */
export function presentedSecret(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const trimmed = authorization.trim();
  const bearer = /^Bearer\s+(.+)$/i.exec(trimmed);
  return bearer ? bearer[1]!.trim() : trimmed;
}

type Authorized =
  | { readonly ok: true; readonly target: NonNullable<Awaited<ReturnType<WebhookRepository['findTarget']>>> }
  | { readonly ok: false; readonly reply: WebhookReply };

/**
 * Unknown integration 404, wrong or missing secret 401, disabled 403: in that order. A
 * rotated-out secret counts as right until its grace period ends, then as wrong.
 */
export async function authorize(db: Db, integrationId: string, authorization: string | undefined): Promise<Authorized> {
  const target = isUuid(integrationId) ? await new WebhookRepository(db).findTarget(integrationId) : undefined;
  if (!target) return { ok: false, reply: reply(404, { error: `no integration ${integrationId}` }) };
  const secret = presentedSecret(authorization);
  if (!secret || !secretMatchesEither(secret, target)) {
    return { ok: false, reply: reply(401, { error: 'missing or wrong webhook secret in the Authorization header' }) };
  }
  if (!target.enabled) return { ok: false, reply: reply(403, { error: 'the integration is disabled' }) };
  return { ok: true, target };
}

/**
 * Handles one delivery: authenticates it, reads what it signals, acknowledges one that cannot
 * change the directory without storing it, drops redeliveries (by event id), and asks for a run. Coalescing makes a burst one run plus at most one follow-up. If
 * Redis is away the delivery is answered 503 and its events forgotten, so the IdP delivers it
 * again and nothing is lost.
 */
export async function receiveWebhook(
  deps: WebhookDeps,
  delivery: { integrationId: string; authorization: string | undefined; body: unknown },
): Promise<WebhookReply> {
  const integrationId = delivery.integrationId;
  const meta = isUuid(integrationId) ? await providerOf(deps.db, integrationId) : undefined;
  if (!meta) return reply(404, { error: `no integration ${integrationId}` });
  // A refusal of a delivery to an integration that exists is recorded, for its admin to see why.
  const refuse = async (refusal: WebhookReply): Promise<WebhookReply> => {
    await new WebhookRepository(deps.db)
      .recordRejection({ integrationId, source: meta.provider, status: refusal.status, reason: String(refusal.body.error ?? '') })
      .catch((error: unknown) => deps.log.warn({ err: (error as Error).message, integrationId }, 'could not record a rejected webhook delivery'));
    return refusal;
  };
  if (meta.provider === 'scim') return refuse(reply(404, { error: `integration ${integrationId} is a scim integration, which takes no webhooks: the IdP pushes to its SCIM endpoint` }));
  // Rare paths authenticate on their own first: no answer but 401 for a caller without the secret.
  // A client still connecting (a receiver that just started) is given a moment before refusing.
  if (!(await queueReady(deps.redis, ENQUEUE_TIMEOUT_MS))) {
    const auth = await authorize(deps.db, integrationId, delivery.authorization);
    return auth.ok ? unavailable(deps, integrationId, `redis is ${deps.redis.status}`) : refuse(auth.reply);
  }
  let signal: WebhookSignal;
  try {
    signal = meta.provider === 'okta' ? readOktaDelivery(delivery.body, meta.oktaAppId) : readAuthentikNotification(delivery.body);
  } catch (error) {
    if (!(error instanceof MalformedWebhookError)) throw error;
    const auth = await authorize(deps.db, integrationId, delivery.authorization);
    return refuse(auth.ok ? reply(400, { error: error.message }) : auth.reply);
  }

  const secret = presentedSecret(delivery.authorization) ?? '';
  const webhooks = new WebhookRepository(deps.db);
  const record = { integrationId, source: meta.provider, eventTypes: signal.eventTypes, eventIds: signal.eventIds };
  // One statement checks the secret and the enabled flag, drops redeliveries and, under a burst
  // (a run almost always queued already), joins the queued run: no Redis round trip, since a
  // queued run's job was enqueued by whoever queued it.
  const wish = wishOf(signal);
  const subjects = wish.kind === 'targeted' ? subjectRows(signal.names) : null;
  const { target, fresh, joinedRunId } = await webhooks.coalesce({ ...record, secretHash: hashSecret(secret), relevant: signal.relevant, subjects });
  if (!target) return reply(404, { error: `no integration ${integrationId}` });
  if (!secret || !secretMatchesEither(secret, target)) {
    return refuse(reply(401, { error: 'missing or wrong webhook secret in the Authorization header' }));
  }
  if (!target.enabled) return refuse(reply(403, { error: 'the integration is disabled' }));
  if (joinedRunId) {
    countDelivery(meta.provider, 'triggered');
    return reply(200, { outcome: 'triggered', runId: joinedRunId });
  }
  if (!signal.relevant) {
    // Not stored (neither its ids nor a delivery row): an org-wide hook sends many of these
    // (logins, sessions), and they change nothing here. Counted in the metric only.
    countDelivery(meta.provider, 'ignored');
    return reply(200, { outcome: 'ignored' });
  }
  if (signal.eventIds.length > 0 && fresh.length === 0) {
    await webhooks.recordDelivery({ ...record, outcome: 'duplicate', runId: null });
    countDelivery(meta.provider, 'duplicate');
    return reply(200, { outcome: 'duplicate' });
  }
  try {
    const { run } = await queueRun(deps, integrationId, 'webhook', { wish, enqueueTimeoutMs: ENQUEUE_TIMEOUT_MS });
    await webhooks.recordDelivery({ ...record, outcome: 'triggered', runId: run.id });
    countDelivery(meta.provider, 'triggered');
    return reply(200, { outcome: 'triggered', runId: run.id });
  } catch (error) {
    if (!(error instanceof QueueUnavailableError || isRedisError(error))) throw error;
    // Forget the events so the IdP's redelivery is not taken for a duplicate.
    await webhooks.forgetEvents(integrationId, fresh);
    return unavailable(deps, integrationId, (error as Error).message);
  }
}

/**
 * What a delivery asks for: a targeted read of the users and groups its events name, or the
 * whole scope when some event cannot be narrowed (an app-level change, a notification that
 * does not say what changed). An event is a signal to re-read, never a change to apply.
 */
function wishOf(signal: WebhookSignal): RunWish {
  const { userIds, logins, groupIds } = signal.names;
  const named = userIds.length + logins.length + groupIds.length > 0;
  return signal.unnarrowable.length === 0 && named ? { kind: 'targeted', subjects: signal.names } : { kind: 'full' };
}

// An integration's provider never changes and its Okta app id rarely does; reading a body
// needs them before the one statement that authenticates it, so they are kept a few seconds.
const PROVIDER_TTL_MS = 5_000;
const providers = new Map<string, { value: { provider: Provider; oktaAppId: string | null }; until: number }>();

async function providerOf(db: Db, integrationId: string) {
  const cached = providers.get(integrationId);
  if (cached && cached.until > Date.now()) return cached.value;
  const value = await new WebhookRepository(db).findProvider(integrationId);
  if (value) providers.set(integrationId, { value, until: Date.now() + PROVIDER_TTL_MS });
  else providers.delete(integrationId);
  return value;
}

function unavailable(deps: WebhookDeps, integrationId: string, why: string): WebhookReply {
  deps.log.warn({ integrationId, why }, 'webhook refused with 503: the queue is unavailable');
  return reply(503, { error: 'the queue is unavailable; deliver again later' });
}

/** Whether the queue's connection is ready, waiting up to `ms` for one that is (re)connecting. */
async function queueReady(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  if (redis.status === 'end') return false;
  return withTimeout(nextReady(redis), ms, () => new QueueUnavailableError(`the queue did not answer within ${ms} ms`)).then(
    () => true,
    () => false,
  );
}

// One 'ready' listener per connection however many deliveries wait on it.
const readyWaits = new WeakMap<Redis, Promise<void>>();
function nextReady(redis: Redis): Promise<void> {
  let wait = readyWaits.get(redis);
  if (!wait) {
    wait = new Promise<void>((resolve) => redis.once('ready', resolve)).finally(() => readyWaits.delete(redis));
    readyWaits.set(redis, wait);
  }
  return wait;
}

function isRedisError(error: unknown): boolean {
  const message = (error as Error | undefined)?.message ?? '';
  return /Stream isn't writeable|enableOfflineQueue|Connection is closed|max retries per request/i.test(message);
}
