import type { Db } from './database.js';
import type { Role } from './schema.js';

/** A stored API token as listed: never its text, nor its hash. */
export interface ApiToken {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  /** The tenant's slug, or null for a token that sees every tenant. */
  readonly tenant: string | null;
  readonly tenantId: string | null;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly revokedAt: string | null;
}

/** A live token found by its hash or id, with the hash (console sessions are bound to it). */
export interface ActiveToken extends ApiToken {
  readonly tokenHash: string;
}

export class TokenRepository {
  constructor(private readonly db: Db) {}

  async create(input: { name: string; role: Role; tenantId: string | null; tokenHash: string; createdBy: string }): Promise<ApiToken> {
    const row = await this.db
      .insertInto('api_tokens')
      .values({ name: input.name, role: input.role, tenant_id: input.tenantId, token_hash: input.tokenHash, created_by: input.createdBy })
      .returning('id')
      .executeTakeFirstOrThrow();
    return (await this.find(row.id))!;
  }

  /** Every token, newest first, revoked ones too. */
  async list(): Promise<ApiToken[]> {
    return (await this.base().orderBy('t.created_at', 'desc').orderBy('t.id').execute()).map(toToken);
  }

  async find(id: string): Promise<ApiToken | undefined> {
    const row = await this.base().where('t.id', '=', id).executeTakeFirst();
    return row && toToken(row);
  }

  /** The unrevoked token with this hash, or undefined. */
  async findActiveByHash(tokenHash: string): Promise<ActiveToken | undefined> {
    const row = await this.base().select('t.token_hash').where('t.token_hash', '=', tokenHash).where('t.revoked_at', 'is', null).executeTakeFirst();
    return row && { ...toToken(row), tokenHash: row.token_hash };
  }

  /** The unrevoked token with this id, or undefined. */
  async findActiveById(id: string): Promise<ActiveToken | undefined> {
    const row = await this.base().select('t.token_hash').where('t.id', '=', id).where('t.revoked_at', 'is', null).executeTakeFirst();
    return row && { ...toToken(row), tokenHash: row.token_hash };
  }

  /** Marks the token revoked (once: a second revoke keeps the first time). Undefined for an unknown id. */
  async revoke(id: string): Promise<ApiToken | undefined> {
    await this.db.updateTable('api_tokens').set({ revoked_at: new Date() }).where('id', '=', id).where('revoked_at', 'is', null).execute();
    return this.find(id);
  }

  private base() {
    return this.db
      .selectFrom('api_tokens as t')
      .leftJoin('tenants as tn', 'tn.id', 't.tenant_id')
      .select(['t.id', 't.name', 't.role', 't.tenant_id', 'tn.slug as tenant_slug', 't.created_at', 't.created_by', 't.revoked_at']);
  }
}

function toToken(row: {
  id: string;
  name: string;
  role: Role;
  tenant_id: string | null;
  tenant_slug: string | null;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
}): ApiToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    tenant: row.tenant_slug,
    tenantId: row.tenant_id,
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}
