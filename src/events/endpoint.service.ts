import { randomBytes } from 'node:crypto';
import { type Config, requireEncryptionKey, requireKeyring } from '../config.js';
import { decrypt, encrypt } from '../crypto.js';
import type { Db } from '../db/database.js';
import { type DeliveryView, EndpointRepository, type StoredEndpoint } from '../db/endpoint.repository.js';
import { isUuid } from '../db/run.repository.js';
import { EventRepository } from '../db/event.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { GRACE_RULE, parseGrace } from '../integrations/webhook-secret-grace.js';
import { EVENT_TYPES, type EventType, formatCursor } from './event.js';
import { checkCursorReachable, readCursor } from './feed.js';

/** An endpoint as the CLI and the API show it; the secret never (only `create` and `rotate-secret` print it, once). */
export interface EndpointView {
  readonly id: string;
  readonly url: string;
  /** The tenant's slug, or null for every tenant. */
  readonly tenant: string | null;
  /** The event types delivered, or null for all. */
  readonly types: readonly string[] | null;
  readonly enabled: boolean;
  readonly disabledReason: string | null;
  /** Delivered through this cursor. */
  readonly cursor: string;
  /** When its current run of failures began, or null. */
  readonly failingSince: string | null;
  readonly previousSecretValidUntil: string | null;
  readonly createdAt: string;
}

/**
 * The host app's event endpoints (SPEC `dirsync endpoint ...`): where events are delivered,
 * signed per Standard Webhooks with a per-endpoint secret (`whsec_` and base64 of 24 random
 * bytes, the format the `standardwebhooks` libraries read), sealed with DIRSYNC_ENCRYPTION_KEY.
 * A new endpoint receives the events committed after it was created; `replay` sends earlier ones.
 */
export class EndpointService {
  private readonly endpoints: EndpointRepository;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {
    this.endpoints = new EndpointRepository(db);
  }

  /** Registers an endpoint. Throws UserError for a URL, tenant or type that cannot be taken. */
  async create(input: { url: string; tenant?: string; types?: string }): Promise<EndpointView & { secret: string }> {
    const url = this.checkUrl(input.url);
    const types = input.types === undefined ? null : readTypes(input.types);
    const tenantId = input.tenant === undefined ? null : await this.tenantId(input.tenant);
    const key = requireEncryptionKey(this.config);
    const secret = newSigningSecret();
    const cursor = await new EventRepository(this.db).end();
    const stored = await this.endpoints.create({ url, tenantId, types, cursor, seal: (id) => encrypt(key, secret, context(id)) });
    return { ...(await this.view(stored)), secret };
  }

  async list(): Promise<EndpointView[]> {
    return Promise.all((await this.endpoints.list()).map((e) => this.view(e)));
  }

  async show(id: string): Promise<EndpointView> {
    return this.view(await this.get(id));
  }

  async delete(id: string): Promise<EndpointView> {
    const view = await this.show(id);
    await this.endpoints.delete(id);
    return view;
  }

  /** A new secret, printed once; the old one also signs for the grace period (default DIRSYNC_WEBHOOK_SECRET_GRACE). */
  async rotateSecret(id: string, grace?: string): Promise<{ id: string; secret: string; previousSecretValidUntil: string | null }> {
    const graceMs = grace === undefined ? this.config.webhookSecretGraceMs : parseGrace(grace);
    if (graceMs === undefined) throw new UserError(`--grace ${GRACE_RULE}, not "${grace}"`);
    await this.get(id);
    const secret = newSigningSecret();
    const until = graceMs > 0 ? new Date(Date.now() + graceMs) : null;
    const rotated = await this.endpoints.rotateSecret(id, encrypt(requireEncryptionKey(this.config), secret, context(id)), until);
    if (!rotated) throw notFound(id);
    return { id, secret, previousSecretValidUntil: rotated.previousSecretExpiresAt?.toISOString() ?? null };
  }

  /** Sends again every event after `after` (and enables a disabled endpoint). */
  async replay(id: string, after: string): Promise<EndpointView> {
    const cursor = readCursor(after);
    if (!cursor) throw new UserError('--after needs the cursor to replay after (an event\'s "cursor"; 0.0 replays everything)');
    await checkCursorReachable(this.db, cursor);
    await this.get(id);
    const moved = await this.endpoints.moveTo(id, cursor);
    if (!moved) throw notFound(id);
    return this.view(moved);
  }

  /** Deliveries, newest first: `limit` of them after skipping `offset`. */
  async deliveries(id: string, limit = 50, offset = 0): Promise<DeliveryView[]> {
    await this.get(id);
    return this.endpoints.deliveries(id, limit, offset);
  }

  /** The endpoint's signing secrets, current first (the previous one while its grace lasts). */
  secrets(endpoint: StoredEndpoint, now = new Date()): string[] {
    const keys = requireKeyring(this.config);
    const secrets = [decrypt(keys, endpoint.secret, context(endpoint.id))];
    if (endpoint.previousSecret && endpoint.previousSecretExpiresAt && endpoint.previousSecretExpiresAt > now) {
      secrets.push(decrypt(keys, endpoint.previousSecret, context(endpoint.id)));
    }
    return secrets;
  }

  async get(id: string): Promise<StoredEndpoint> {
    const endpoint = isUuid(id) ? await this.endpoints.find(id) : undefined;
    if (!endpoint) throw notFound(id);
    return endpoint;
  }

  private async view(e: StoredEndpoint): Promise<EndpointView> {
    const tenant = e.tenantId ? await new TenantRepository(this.db).findById(e.tenantId) : undefined;
    return {
      id: e.id,
      url: e.url,
      tenant: tenant?.slug ?? null,
      types: e.types,
      enabled: e.enabled,
      disabledReason: e.disabledReason,
      cursor: formatCursor(e.cursor),
      failingSince: e.failingSince?.toISOString() ?? null,
      previousSecretValidUntil: e.previousSecretExpiresAt && e.previousSecretExpiresAt > new Date() ? e.previousSecretExpiresAt.toISOString() : null,
      createdAt: e.createdAt.toISOString(),
    };
  }

  private async tenantId(slug: string): Promise<string> {
    const tenant = await new TenantRepository(this.db).findBySlug(slug);
    if (!tenant) throw new NotFoundError(`tenant "${slug}" does not exist: \`dirsync tenant list\` shows the tenants`);
    return tenant.id;
  }

  /** Only http(s) URLs, `http://` only with DIRSYNC_ALLOW_HTTP=true, no credentials in them. */
  private checkUrl(text: string): string {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UserError(`--url must be an absolute http(s) URL, not "${text.slice(0, 200)}"`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UserError(`--url must be an http(s) URL, not ${url.protocol}//…`);
    if (url.protocol === 'http:' && !this.config.allowHttp) throw new UserError('--url must be https:// (set DIRSYNC_ALLOW_HTTP=true to deliver over plain http, for local development)');
    if (url.username || url.password) throw new UserError('--url must not carry a user name or password: verify deliveries by their signature instead');
    if (text.length > 2048) throw new UserError('--url is longer than 2048 characters');
    return url.toString();
  }
}

/** Endpoint secrets are sealed bound to their endpoint, so one cannot be swapped for another's. */
function context(endpointId: string): string {
  return `endpoint:${endpointId}`;
}

function newSigningSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`endpoint ${id} does not exist: \`dirsync endpoint list\` shows the ids`);
}

function readTypes(text: string): EventType[] {
  const types = text.split(',').map((t) => t.trim()).filter(Boolean);
  if (types.length === 0) throw new UserError(`--types needs at least one event type: ${EVENT_TYPES.join(', ')}`);
  const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0) throw new UserError(`--types: ${unknown.join(', ')} ${unknown.length === 1 ? 'is not an event type' : 'are not event types'}; the types are ${EVENT_TYPES.join(', ')}`);
  return [...new Set(types)] as EventType[];
}
