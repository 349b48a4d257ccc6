import type { JsonObject } from '../core/model.js';
import type { Db } from './database.js';
import type { AuditOutcome, Role } from './schema.js';

/** One admin action to record. */
export interface AuditEntry {
  /** `token <name>`, `bootstrap admin` or `cli <os user>`. */
  readonly actor: string;
  readonly tokenId?: string | null;
  readonly role?: Role | null;
  readonly actorTenantId?: string | null;
  /** `<target type>.<verb>`, such as `integration.update` or `run.approve`. */
  readonly action: string;
  readonly targetType?: string | null;
  readonly targetId?: string | null;
  /** The tenant the target belongs to, if any. */
  readonly tenantId?: string | null;
  /** The client's address, or `local`. */
  readonly source: string;
  readonly outcome: AuditOutcome;
  /** Why it was refused or failed (one sentence). */
  readonly reason?: string | null;
  /** Non-secret particulars: which fields changed (never their values for credentials). */
  readonly detail?: JsonObject | null;
}

/** A recorded action as shown (CLI `--json`, API, console). */
export interface AuditRecord {
  readonly id: string;
  readonly at: string;
  readonly actor: string;
  readonly tokenId: string | null;
  readonly role: Role | null;
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string | null } | null;
  /** The target's tenant slug, when it has one that still exists. */
  readonly tenant: string | null;
  readonly source: string;
  readonly outcome: AuditOutcome;
  readonly reason: string | null;
  readonly detail: JsonObject | null;
}

export class AuditRepository {
  constructor(private readonly db: Db) {}

  async append(entry: AuditEntry): Promise<void> {
    await this.db
      .insertInto('audit_log')
      .values({
        actor: entry.actor,
        token_id: entry.tokenId ?? null,
        role: entry.role ?? null,
        actor_tenant_id: entry.actorTenantId ?? null,
        action: entry.action,
        target_type: entry.targetType ?? null,
        target_id: entry.targetId ?? null,
        tenant_id: entry.tenantId ?? null,
        source: entry.source,
        outcome: entry.outcome,
        reason: entry.reason ?? null,
        detail: entry.detail ? JSON.stringify(entry.detail) : null,
      })
      .execute();
  }

  /**
   * Actions at or after `since`, newest first, at most `limit`. With `tenantId`, only those
   * whose target belongs to that tenant (what a tenant-scoped admin may read).
   */
  async list(options: { since: Date; limit: number; tenantId?: string | undefined }): Promise<AuditRecord[]> {
    let query = this.db
      .selectFrom('audit_log as a')
      .leftJoin('tenants as t', 't.id', 'a.tenant_id')
      .selectAll('a')
      .select('t.slug as tenant_slug')
      .where('a.at', '>=', options.since);
    const tenantId = options.tenantId;
    // Not the rows of its own tokens aimed elsewhere: those name another tenant's things.
    if (tenantId) query = query.where('a.tenant_id', '=', tenantId);
    const rows = await query.orderBy('a.id', 'desc').limit(options.limit).execute();
    return rows.map((r) => ({
      id: String(r.id),
      at: r.at.toISOString(),
      actor: r.actor,
      tokenId: r.token_id,
      role: r.role,
      action: r.action,
      target: r.target_type ? { type: r.target_type, id: r.target_id } : null,
      tenant: r.tenant_slug,
      source: r.source,
      outcome: r.outcome,
      reason: r.reason,
      detail: r.detail,
    }));
  }
}
