import type { FastifyReply, FastifyRequest } from 'fastify';
import type { JsonObject } from '../core/model.js';
import { type Capabilities, type Principal, type Role, capabilitiesOf, refusal, seesTenant } from '../access/roles.js';
import { AuditRepository } from '../db/audit.repository.js';
import type { Db } from '../db/database.js';

export { type Target, locate };
import { type Target, locate, notFoundFor } from '../access/targets.js';
import type { Logger } from '../log.js';
import { apiWording } from './api-wording.js';

/**
 * Finds a request's target (undefined: none in particular, as for a list). Throws NotFoundError (with the message a missing one gets, so a
 * scoped token cannot tell "elsewhere" from "nowhere") when there is none.
 */
export type Locator = (db: Db, request: FastifyRequest) => Promise<Target | undefined>;

/**
 * What a route needs, declared with the route (fastify's route `config.access`): the weakest
 * role that may use it, the audit action's name, and how to find its target's tenant.
 * Mutations (any method but GET) are audited whatever their outcome; reads only when refused.
 */
export interface Access {
  readonly role: Role;
  /** `<type>.<verb>`, such as `integration.update`. */
  readonly action: string;
  readonly target?: Locator;
  /** Only for tokens that see every tenant (tenants, tokens). */
  readonly allTenants?: boolean;
  /** Console forms: a post is an action (audited) only with `confirm=yes`; without, it only asks. */
  readonly confirmed?: boolean;
  /** Non-secret particulars for the audit log (field names, flags: never credentials). */
  readonly detail?: (request: FastifyRequest) => JsonObject | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

interface RequestAudit {
  action: string;
  target: Target | undefined;
  detail: JsonObject | undefined;
  refused: string | undefined;
  failed: string | undefined;
  always: boolean;
}

// Per-request state kept off the request object, so no fastify decorators are shared between plugins.
const principals = new WeakMap<FastifyRequest, Principal>();
const audits = new WeakMap<FastifyRequest, RequestAudit>();

export function setPrincipal(request: FastifyRequest, principal: Principal): void {
  principals.set(request, principal);
}

/** The authenticated principal of a request (set by the API's and the console's sign-in checks). */
export function principalOfRequest(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  if (!principal) throw new Error('no principal: the request was not authenticated');
  return principal;
}

/** The tenant a request is confined to, or undefined for a token that sees every tenant. */
export function scopeOf(request: FastifyRequest): string | undefined {
  return principals.get(request)?.tenantId ?? undefined;
}

/** What the console shows this request's principal (undefined before sign-in). */
export function capabilitiesOfRequest(request: FastifyRequest): Capabilities | undefined {
  const principal = principals.get(request);
  return principal && capabilitiesOf(principal);
}

/** Whether a request is an action to audit whatever its outcome: any API mutation; a console post once confirmed. */
export function isAction(request: FastifyRequest, access: Access): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false;
  return !access.confirmed || (request.body as { confirm?: unknown } | undefined)?.confirm === 'yes';
}

/** Names the target once a handler knows it (a created tenant's, integration's or token's id). */
export function noteTarget(request: FastifyRequest, target: Target): void {
  const audit = audits.get(request);
  if (audit) audit.target = target;
}

/** Records why a request failed, for its audit row (set from the error handler's error). */
export function noteFailure(request: FastifyRequest, message: string): void {
  const audit = audits.get(request);
  if (audit && !audit.refused) audit.failed = message;
}

/** Thrown for an insufficient role: 403 with the sentence naming the role needed. */
export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
  readonly statusCode = 403;
}

/**
 * The check every route goes through: the target's tenant first (another tenant's is a 404,
 * as if it did not exist), then the role (403). Marks the request for the audit log.
 */
export async function enforce(db: Db, request: FastifyRequest, access: Access, options: { auditAlways: boolean }): Promise<void> {
  const principal = principalOfRequest(request);
  const audit: RequestAudit = { action: access.action, target: undefined, detail: undefined, refused: undefined, failed: undefined, always: options.auditAlways };
  audits.set(request, audit);
  try {
    audit.detail = access.detail?.(request);
  } catch {
    audit.detail = undefined;
  }
  let allTenants = access.allTenants === true;
  const target = access.target ? await access.target(db, request) : undefined;
  audit.target = target;
  if (target && principal.tenantId !== null) {
    // A create aimed at every tenant (an endpoint without a tenant) needs an unscoped token;
    // anything existing outside the token's tenant is hidden, as if it did not exist.
    if (target.id === null && target.tenantId === null) allTenants = true;
    else if (!seesTenant(principal, target.tenantId)) {
      audit.refused = `outside the token's tenant ${principal.tenantSlug ?? ''}`.trim();
      throw notFoundFor(target);
    }
  }
  const why = refusal(principal, access.role, { allTenants });
  if (why) {
    audit.refused = why;
    throw new ForbiddenError(why);
  }
}

/** Writes the request's audit row (before the answer is sent, so a caller reading the log next sees it). */
export async function writeAudit(db: Db, log: Logger | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const audit = audits.get(request);
  const principal = principals.get(request);
  if (!audit || !principal) return;
  audits.delete(request);
  const status = reply.statusCode;
  // A 4xx is dirsync saying no (bad input, a credential redirect, a run not held): refused,
  // as an access refusal is; a 5xx is a failure.
  const outcome = audit.refused || (status >= 400 && status < 500) ? 'refused' : status < 400 ? 'ok' : 'failed';
  if (!audit.always && outcome !== 'refused') return;
  await new AuditRepository(db)
    .append({
      actor: principal.actor,
      tokenId: principal.tokenId,
      role: principal.role,
      actorTenantId: principal.tenantId,
      action: audit.action,
      targetType: audit.target?.type ?? null,
      targetId: audit.target?.id ?? null,
      tenantId: audit.target?.tenantId ?? null,
      source: request.ip,
      outcome,
      reason: audit.refused ?? (outcome === 'ok' ? null : apiWording(audit.failed ?? `HTTP ${status}`)),
      detail: audit.detail ?? null,
    })
    .catch((error: Error) => log?.error({ err: error.message, action: audit.action }, 'audit log write failed'));
}

/**
 * A locator reading one string from the request's params, body or query; when it is absent,
 * `whenAbsent` (undefined: no particular target, as for an unfiltered list).
 */
export function from(part: 'params' | 'body' | 'query', field: string, find: (value: string) => (db: Db) => Promise<Target>, whenAbsent?: Target): Locator {
  return async (db, request) => {
    const value = (request[part] as Record<string, unknown> | undefined | null)?.[field];
    return typeof value === 'string' ? find(value)(db) : whenAbsent;
  };
}
