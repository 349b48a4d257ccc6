import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { uniqueSlug } from '../support/env.js';

/**
 * Shared pieces of the SCIM oracle tests (test/scim/*.test.ts). Written from RFC 7643 / 7644,
 * /work/shared/SPEC.md and the feature's stated contract, never from src/.
 */

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
/** A custom schema extension no service provider knows in advance. */
export const ACME = 'urn:example:params:scim:schemas:extension:acme:2.0:User';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export interface ScimIntegration {
  tenantId: string;
  tenantSlug: string;
  integrationId: string;
  token: string;
}

export async function createScimIntegration(
  db: Db,
  config: Config,
  options: { deprovision?: string; threshold?: string; tenantSlug?: string } = {},
): Promise<ScimIntegration> {
  const tenantSlug = options.tenantSlug ?? uniqueSlug('scim');
  const tenants = new TenantRepository(db);
  const tenant = (await tenants.findBySlug(tenantSlug)) ?? (await tenants.create(tenantSlug, tenantSlug))!;
  const created = (await new IntegrationService(db, config).create({
    tenant: tenantSlug,
    provider: 'scim',
    deprovision: options.deprovision,
    threshold: options.threshold,
  } as Parameters<IntegrationService['create']>[0])) as unknown as { integration: { id: string }; scimToken?: string; issued?: { scimToken?: string } };
  // The brief promised `scimToken` on the result; the implementation returns it as `issued.scimToken`.
  const token = created.scimToken ?? created.issued?.scimToken;
  if (typeof token !== 'string' || token === '') {
    throw new Error(`IntegrationService.create({provider: 'scim'}) returned no scimToken: ${JSON.stringify(Object.keys(created))}`);
  }
  return { tenantId: tenant.id, tenantSlug, integrationId: created.integration.id, token };
}

export interface Sent {
  method: string;
  url: string;
  payload?: unknown;
  status: number;
  body: string;
}

/** A client for one integration's SCIM base URL; every exchange is logged and a 5xx always fails. */
export class ScimClient {
  readonly log: string[] = [];
  constructor(
    private readonly app: FastifyInstance,
    public integrationId: string,
    public token: string,
  ) {}

  async send(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    payload?: unknown,
    options: { raw?: string; contentType?: string; headers?: Record<string, string>; base?: string } = {},
  ): Promise<LightMyRequestResponse> {
    const url = `${options.base ?? `/scim/v2/${this.integrationId}`}${path}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...(options.headers ?? {}) };
    const body = options.raw ?? (payload === undefined ? undefined : JSON.stringify(payload));
    if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/scim+json';
    const res = await this.app.inject({ method, url, headers, payload: body });
    const shown = body === undefined ? '' : ` ${body.length > 400 ? `${body.slice(0, 400)}...(${body.length} chars)` : body}`;
    this.log.push(`${method} ${url}${shown}\n    -> ${res.statusCode} ${res.body.length > 600 ? `${res.body.slice(0, 600)}...` : res.body}`);
    if (res.statusCode >= 500) {
      throw new Error(`5xx from ${method} ${url} (SPEC: "Bad input is answered 400 (HTTP) ... never 5xx"): ${res.statusCode} ${res.body}\n${this.transcript()}`);
    }
    return res;
  }

  transcript(last = 40): string {
    return this.log.slice(-last).join('\n');
  }
}

export function json(res: LightMyRequestResponse): Record<string, unknown> {
  try {
    return JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    throw new Error(`response body is not JSON: ${res.statusCode} ${res.body.slice(0, 300)}`);
  }
}

/**
 * RFC 7644 §3.12: an error response carries `schemas: [Error URN]`, `status` (the HTTP status
 * as a JSON string, REQUIRED), optionally `scimType` and `detail`. Returns the problems.
 */
export function errorProblems(res: LightMyRequestResponse, status: number | number[], scimType?: string | string[]): string[] {
  const statuses = Array.isArray(status) ? status : [status];
  const problems: string[] = [];
  if (!statuses.includes(res.statusCode)) problems.push(`status ${res.statusCode}, expected ${statuses.join(' or ')}`);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    return [...problems, `error body is not JSON: ${res.body.slice(0, 200)}`];
  }
  if (!Array.isArray(body.schemas) || !body.schemas.includes(ERROR_SCHEMA)) problems.push(`error schemas ${JSON.stringify(body.schemas)} lack ${ERROR_SCHEMA}`);
  if (body.status !== String(res.statusCode)) problems.push(`error "status" is ${JSON.stringify(body.status)}, expected the string "${res.statusCode}"`);
  if (scimType !== undefined) {
    const types = Array.isArray(scimType) ? scimType : [scimType];
    if (!types.includes(body.scimType as string)) problems.push(`scimType ${JSON.stringify(body.scimType)}, expected ${types.join(' or ')}`);
  }
  return problems;
}

/** RFC 7643 §2.5: unassigned, null and an empty array are the same state (and so is a complex value with no sub-attribute). */
export function unassigned(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.values(v as object).every(unassigned);
}

function show(v: unknown): string {
  return JSON.stringify(v);
}

/**
 * Whether `actual` holds exactly what `expected` says. Objects: every assigned expected key is
 * present and matches, and every other key of `actual` is unassigned or allowed by `extra`
 * (called with the key path, the key and the value). Arrays are multi-valued attributes:
 * matched as multisets (RFC 7643 defines no order). Primitives: strict equality.
 */
export function diff(
  actual: unknown,
  expected: unknown,
  path: string,
  extra: (path: string, key: string, value: unknown) => boolean,
): string[] {
  if (unassigned(expected)) return unassigned(actual) ? [] : [`${path}: expected unassigned, got ${show(actual)}`];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${path}: expected ${show(expected)}, got ${show(actual)}`];
    if (actual.length !== expected.length) return [`${path}: expected ${expected.length} values ${show(expected)}, got ${actual.length}: ${show(actual)}`];
    const left = [...actual];
    for (const e of expected) {
      const i = left.findIndex((a) => diff(a, e, `${path}[]`, extra).length === 0);
      if (i < 0) return [`${path}: no value matches ${show(e)} in ${show(actual)}`];
      left.splice(i, 1);
    }
    return [];
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${path}: expected ${show(expected)}, got ${show(actual)}`];
    const a = actual as Record<string, unknown>;
    const e = expected as Record<string, unknown>;
    const problems: string[] = [];
    for (const [k, v] of Object.entries(e)) problems.push(...diff(a[k], v, `${path}.${k}`, extra));
    for (const [k, v] of Object.entries(a)) {
      if (k in e && !unassigned(e[k])) continue;
      if (unassigned(v) || extra(path, k, v)) continue;
      problems.push(`${path}.${k}: not sent by the client (or removed since), yet returned as ${show(v)}`);
    }
    return problems;
  }
  return Object.is(actual, expected) ? [] : [`${path}: expected ${show(expected)}, got ${show(actual)}`];
}

export function listProblems(body: Record<string, unknown>): string[] {
  const p: string[] = [];
  if (!Array.isArray(body.schemas) || !body.schemas.includes(LIST_RESPONSE)) p.push(`list schemas ${show(body.schemas)} lack ${LIST_RESPONSE}`);
  if (typeof body.totalResults !== 'number') p.push(`totalResults ${show(body.totalResults)} is not a number`);
  const resources = (body.Resources ?? []) as unknown[];
  if (!Array.isArray(resources)) p.push(`Resources is not an array`);
  if ((body.totalResults as number) > 0 && body.Resources === undefined && body.itemsPerPage !== 0) p.push('Resources missing with totalResults > 0');
  if (body.itemsPerPage !== undefined && body.itemsPerPage !== resources.length) p.push(`itemsPerPage ${show(body.itemsPerPage)} != ${resources.length} Resources`);
  return p;
}
