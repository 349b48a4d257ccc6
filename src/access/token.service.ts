import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { type ActiveToken, type ApiToken, TokenRepository } from '../db/token.repository.js';
import { isUuid } from '../db/run.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { type Principal, ROLES, type Role } from './roles.js';

/**
 * Tokens start with this, so secret scanners (GitHub's, gitleaks) can be taught to find them,
 * and a person can tell a dirsync token from an IdP's.
 */
export const TOKEN_PREFIX = 'dst_';

// dst_ and 32 random bytes in base64url (43 characters).
const TOKEN_SHAPE = /^dst_[A-Za-z0-9_-]{43}$/;

/** SHA-256 (hex) of a token's text: what is stored. Tokens are 256 random bits, so a fast hash suffices. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented bearer token with the configured admin token. */
export function adminTokenMatches(presented: string | undefined, expected: string | undefined): boolean {
  if (!presented || !expected) return false;
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The bootstrap admin: DIRSYNC_ADMIN_TOKEN, every tenant. */
export const BOOTSTRAP_ADMIN: Principal = { actor: 'bootstrap admin', tokenId: null, role: 'admin', tenantId: null, tenantSlug: null };

/** The principal a stored token acts as. */
export function principalOf(token: ApiToken): Principal {
  return { actor: `token:${token.name}`, tokenId: token.id, role: token.role, tenantId: token.tenantId, tenantSlug: token.tenant };
}

/** A new token as `dirsync token create` prints it: the text is shown this once. */
export interface IssuedToken {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly tenant: string | null;
  readonly token: string;
}

/** Creating, listing, revoking and recognising API tokens: the one way the CLI and the admin API do it. */
export class TokenService {
  private readonly tokens: TokenRepository;

  constructor(private readonly db: Db) {
    this.tokens = new TokenRepository(db);
  }

  /**
   * Issues a token. `role` is viewer, operator or admin; `tenant` a tenant slug to scope it to
   * (none: every tenant); `name` defaults to `<role>` or `<role>-<tenant>`. Throws UserError
   * for a bad role or name, NotFoundError for an unknown tenant.
   */
  async create(input: { role: string; tenant?: string | undefined; name?: string | undefined; createdBy: string }): Promise<IssuedToken> {
    if (!(ROLES as readonly string[]).includes(input.role)) throw new UserError(`--role must be viewer, operator or admin, not "${input.role.slice(0, 40)}"`);
    const role = input.role as Role;
    let tenantId: string | null = null;
    if (input.tenant !== undefined) {
      const tenant = await new TenantRepository(this.db).findBySlug(input.tenant);
      if (!tenant) throw new NotFoundError(`tenant "${input.tenant.slice(0, 80)}" does not exist: \`dirsync tenant list\` shows the tenants`);
      tenantId = tenant.id;
    }
    const name = input.name?.trim() || (input.tenant ? `${role}-${input.tenant}` : role);
    if (name.length > 100) throw new UserError('--name is longer than 100 characters');
    if (/[\u0000-\u001f\u007f]/.test(name)) throw new UserError('--name holds a control character (such as a NUL or a line break)');
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const stored = await this.tokens.create({ name, role, tenantId, tokenHash: hashToken(token), createdBy: input.createdBy });
    return { id: stored.id, name: stored.name, role: stored.role, tenant: stored.tenant, token };
  }

  /** Every token, revoked ones too, without their text. */
  async list(): Promise<ApiToken[]> {
    return this.tokens.list();
  }

  async get(id: string): Promise<ApiToken> {
    const found = isUuid(id) ? await this.tokens.find(id) : undefined;
    if (!found) throw new NotFoundError(`token ${id.slice(0, 80)} does not exist: \`dirsync token list\` shows the tokens`);
    return found;
  }

  /** Revokes a token: requests with it, and console sessions signed in with it, are refused from now on. */
  async revoke(id: string): Promise<ApiToken> {
    await this.get(id);
    return (await this.tokens.revoke(id))!;
  }

  /**
   * Who a presented bearer token is: the bootstrap admin, a live stored token, or undefined
   * (unknown, malformed or revoked).
   */
  async authenticate(presented: string | undefined, adminToken: string | undefined): Promise<Principal | undefined> {
    if (!presented) return undefined;
    if (adminTokenMatches(presented, adminToken)) return BOOTSTRAP_ADMIN;
    if (!TOKEN_SHAPE.test(presented)) return undefined;
    const found = await this.tokens.findActiveByHash(hashToken(presented));
    return found && principalOf(found);
  }

  /** A live token by id (for console sessions), or undefined when unknown or revoked. */
  async active(id: string): Promise<ActiveToken | undefined> {
    return isUuid(id) ? this.tokens.findActiveById(id) : undefined;
  }
}
