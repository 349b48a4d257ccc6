import { sql } from 'kysely';
import type { DeprovisionMode } from '../core/policy.js';
import type { Db } from './database.js';
import type { CredentialKind, IntegrationRow, IntegrationRowUpdate, NewIntegrationRow, Provider, PulledProvider } from './schema.js';

export type Schedule =
  | { readonly kind: 'every'; readonly ms: number }
  | { readonly kind: 'cron'; readonly pattern: string };

/**
 * An integration as the rest of the code sees it: no credentials, no row shapes. A pulled
 * integration (okta, authentik) has the IdP's base URL; a scim one has none (the IdP pushes).
 */
export type Integration = IntegrationCommon &
  ({ readonly provider: PulledProvider; readonly baseUrl: string } | { readonly provider: 'scim'; readonly baseUrl: null });

/** An integration dirsync reads from (okta, authentik). */
export type PulledIntegration = Extract<Integration, { readonly provider: PulledProvider }>;

interface IntegrationCommon {
  readonly id: string;
  readonly tenantId: string;
  readonly tenantSlug: string;
  readonly provider: Provider;
  /** How it authenticates; the credentials themselves are never here. */
  readonly credentialKind: CredentialKind;
  readonly oktaClientId: string | null;
  readonly oktaAppId: string | null;
  readonly authentikApp: string | null;
  readonly deprovisionMode: DeprovisionMode;
  readonly thresholdPercent: number | null;
  readonly schedule: Schedule | null;
  /** How often a scheduled run reads the whole scope rather than the change feed (ms); null: the default, DEFAULT_FULL_EVERY_MS. */
  readonly fullEveryMs: number | null;
  readonly enabled: boolean;
  /** Until when the webhook secret retired by the last rotation still works; null when none does. */
  readonly previousWebhookSecretValidUntil: string | null;
  /** scim: until when the token retired by the last rotation still works; null when none does. */
  readonly previousScimTokenValidUntil: string | null;
  /**
   * Takes SCIM pushes: always for a scim integration; for okta and authentik, when created or
   * updated with `--scim` (push for latency, the API for truth: each push asks for a targeted read).
   */
  readonly scimPush: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export class IntegrationRepository {
  constructor(private readonly db: Db) {}

  async insert(row: NewIntegrationRow): Promise<void> {
    await this.db.insertInto('integrations').values(row).execute();
  }

  async update(id: string, changes: IntegrationRowUpdate): Promise<boolean> {
    const result = await this.db
      .updateTable('integrations')
      .set({ ...changes, updated_at: new Date() })
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Deletes the integration and its runs with their change log, but not the log's applied rows:
   * those are events, kept until retention prunes them (migration 2026-11-30T0400). Use
   * deleteIntegration (src/integrations/integration-removal.ts), which also records the events
   * of the deletion itself.
   */
  async delete(id: string): Promise<boolean> {
    await sql`delete from run_changes c using runs r where r.integration_id = ${id}::uuid and c.run_id = r.id and c.state <> 'applied'`.execute(this.db);
    const result = await this.db.deleteFrom('integrations').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /**
   * Locks the integration's row until the transaction ends (false if there is none): writes
   * whose rows reference it (accounts, groups, SCIM records) wait, or wait for this. A run's
   * memberships reference no integration row, so deleting one also takes the apply lock
   * (lockApply in src/runs/read-stamps.ts) first.
   */
  async lockForDelete(id: string): Promise<boolean> {
    const row = await this.db.selectFrom('integrations').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
    return row !== undefined;
  }

  async find(id: string): Promise<Integration | undefined> {
    const row = await this.base().where('i.id', '=', id).executeTakeFirst();
    return row && toIntegration(row);
  }

  async list(tenantId?: string): Promise<Integration[]> {
    let query = this.base();
    if (tenantId) query = query.where('i.tenant_id', '=', tenantId);
    const rows = await query.orderBy('t.slug').orderBy('i.created_at').execute();
    return rows.map(toIntegration);
  }

  /**
   * Replaces the webhook secret's hash in one statement. With a grace period the replaced hash
   * becomes the previous one, valid until now() plus the grace (a previous one still valid is
   * dropped); without, no previous secret is left. Returns that expiry, or undefined if there is
   * no such integration.
   */
  async rotateWebhookSecret(id: string, secretHash: string, graceMs: number): Promise<{ previousExpiresAt: Date | null } | undefined> {
    const row = await this.db
      .updateTable('integrations')
      // Right-hand sides read the row as it was: the previous hash is the one being replaced.
      .set((eb) => ({
        webhook_secret_previous_hash: graceMs > 0 ? eb.ref('webhook_secret_hash') : null,
        webhook_secret_previous_expires_at: graceMs > 0 ? sql<Date>`now() + ${graceMs} * interval '1 millisecond'` : null,
        webhook_secret_hash: secretHash,
        updated_at: sql<Date>`now()`,
      }))
      .where('id', '=', id)
      .returning('webhook_secret_previous_expires_at')
      .executeTakeFirst();
    return row && { previousExpiresAt: row.webhook_secret_previous_expires_at };
  }

  /** The sealed credentials; undefined when there is no such integration or it holds none (scim). */
  /** What authenticates a SCIM request: the token hashes (the previous one only within its grace) and whether it is enabled; undefined unless the integration takes SCIM pushes. */
  async findScimAuth(id: string): Promise<{ secretHash: string; previousSecretHash: string | null; enabled: boolean } | undefined> {
    const row = await this.db
      .selectFrom('integrations')
      .select([
        'scim_token_hash',
        'enabled',
        sql<string | null>`case when scim_token_previous_expires_at > now() then scim_token_previous_hash end`.as('previous_hash'),
      ])
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.scim_token_hash ? { secretHash: row.scim_token_hash, previousSecretHash: row.previous_hash, enabled: row.enabled } : undefined;
  }

  async loadCredentials(id: string): Promise<Buffer | undefined> {
    const row = await this.db.selectFrom('integrations').select('credentials').where('id', '=', id).executeTakeFirst();
    return row?.credentials ?? undefined;
  }

  /**
   * Replaces a scim integration's token hash in one statement, keeping the replaced one valid
   * for `graceMs` (as rotateWebhookSecret does). Undefined when no scim integration has this id.
   */
  async rotateScimToken(id: string, tokenHash: string, graceMs: number): Promise<{ previousExpiresAt: Date | null } | undefined> {
    const row = await this.db
      .updateTable('integrations')
      .set((eb) => ({
        scim_token_previous_hash: graceMs > 0 ? eb.ref('scim_token_hash') : null,
        scim_token_previous_expires_at: graceMs > 0 ? sql<Date>`now() + ${graceMs} * interval '1 millisecond'` : null,
        scim_token_hash: tokenHash,
        updated_at: sql<Date>`now()`,
      }))
      .where('id', '=', id)
      .where('scim_token_hash', 'is not', null)
      .returning('scim_token_previous_expires_at')
      .executeTakeFirst();
    return row && { previousExpiresAt: row.scim_token_previous_expires_at };
  }

  /**
   * The schedule of every enabled integration that has one (what the queue's job schedulers
   * must match, src/queue/queue.ts reconcileSchedules): two columns of each row, no join.
   */
  async listSchedules(): Promise<{ id: string; schedule: Schedule }[]> {
    const rows = await this.db
      .selectFrom('integrations')
      .select(['id', 'schedule_every_ms', 'schedule_cron'])
      .where('enabled', '=', true)
      .where((eb) => eb.or([eb('schedule_every_ms', 'is not', null), eb('schedule_cron', 'is not', null)]))
      .execute();
    return rows.map((row) => ({ id: row.id, schedule: scheduleOf(row)! }));
  }

  /** Where the integration's change feed is read from next; null before its first full run. */
  async feedCursor(id: string): Promise<string | null> {
    const row = await this.db.selectFrom('integrations').select('feed_cursor').where('id', '=', id).executeTakeFirst();
    return row?.feed_cursor ?? null;
  }

  async setFeedCursor(id: string, cursor: string | null): Promise<void> {
    await this.db.updateTable('integrations').set({ feed_cursor: cursor }).where('id', '=', id).execute();
  }

  /** Every integration's id, oldest first. */
  async listIds(): Promise<string[]> {
    const rows = await this.db.selectFrom('integrations').select('id').orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => r.id);
  }

  /** The sealed credentials, the row locked until the caller's transaction ends. */
  async lockCredentials(id: string): Promise<Buffer | undefined> {
    const row = await this.db.selectFrom('integrations').select('credentials').where('id', '=', id).forUpdate().executeTakeFirst();
    return row?.credentials ?? undefined;
  }

  /** Replaces the sealed credentials alone: re-encrypting changes no setting, so updated_at stays. */
  async replaceCredentials(id: string, credentials: Buffer): Promise<void> {
    await this.db.updateTable('integrations').set({ credentials }).where('id', '=', id).execute();
  }

  private base() {
    return this.db
      .selectFrom('integrations as i')
      .innerJoin('tenants as t', 't.id', 'i.tenant_id')
      .select([
        'i.id',
        'i.tenant_id',
        't.slug as tenant_slug',
        'i.provider',
        'i.base_url',
        'i.credential_kind',
        'i.okta_client_id',
        'i.okta_app_id',
        'i.authentik_app',
        'i.deprovision_mode',
        'i.threshold_percent',
        'i.schedule_every_ms',
        'i.schedule_cron',
        'i.full_every_ms',
        'i.enabled',
        sql<Date | null>`case when i.webhook_secret_previous_expires_at > now() then i.webhook_secret_previous_expires_at end`.as(
          'previous_webhook_secret_valid_until',
        ),
        sql<Date | null>`case when i.scim_token_previous_expires_at > now() then i.scim_token_previous_expires_at end`.as('previous_scim_token_valid_until'),
        sql<boolean>`i.scim_token_hash is not null`.as('scim_push'),
        'i.created_at',
        'i.updated_at',
      ]);
  }
}

type ListedRow = Omit<
  IntegrationRow,
  'credentials' | 'feed_cursor' | 'webhook_secret_hash' | 'webhook_secret_previous_hash' | 'webhook_secret_previous_expires_at' | 'scim_token_hash' | 'scim_token_previous_hash' | 'scim_token_previous_expires_at'
> & {
  tenant_slug: string;
  previous_webhook_secret_valid_until: Date | null;
  previous_scim_token_valid_until: Date | null;
  scim_push: boolean;
};

function scheduleOf(row: Pick<IntegrationRow, 'schedule_every_ms' | 'schedule_cron'>): Schedule | null {
  return row.schedule_every_ms !== null
    ? { kind: 'every', ms: Number(row.schedule_every_ms) }
    : row.schedule_cron !== null
      ? { kind: 'cron', pattern: row.schedule_cron }
      : null;
}

function toIntegration(row: ListedRow): Integration {
  const schedule = scheduleOf(row);
  // The table's integrations_reach check guarantees the pairing.
  const reach = row.provider === 'scim' ? { provider: row.provider, baseUrl: null } : { provider: row.provider, baseUrl: row.base_url! };
  return {
    id: row.id,
    tenantId: row.tenant_id,
    tenantSlug: row.tenant_slug,
    ...reach,
    credentialKind: row.credential_kind,
    oktaClientId: row.okta_client_id,
    oktaAppId: row.okta_app_id,
    authentikApp: row.authentik_app,
    deprovisionMode: row.deprovision_mode,
    thresholdPercent: row.threshold_percent,
    schedule,
    fullEveryMs: row.full_every_ms === null ? null : Number(row.full_every_ms),
    enabled: row.enabled,
    previousWebhookSecretValidUntil: row.previous_webhook_secret_valid_until?.toISOString() ?? null,
    previousScimTokenValidUntil: row.previous_scim_token_valid_until?.toISOString() ?? null,
    scimPush: row.scim_push,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
