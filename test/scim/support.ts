import { expect } from 'vitest';
import { type CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';

export interface ScimIntegration {
  id: string;
  provider: string;
  scimBaseUrl: string;
  scimToken: string;
}

export interface TenantUser {
  id: string;
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}

export interface TenantGroup {
  id: string;
  name: string;
  members: string[];
}

export interface ScimResponse {
  status: number;
  contentType: string;
  location: string | null;
  /** The raw body text ('' when there is none). */
  text: string;
  /** The parsed JSON body, or undefined when the body is empty. */
  body: any;
}

/**
 * One SCIM client: what a real IdP sends, to `<scimBaseUrl><path>`, with `Authorization: Bearer <token>`.
 * `headers` lets a replay add exactly the headers its client sends (authentik sends Accept and
 * Content-Type application/scim+json; Okta's requests carry a User-Agent).
 */
export class ScimClient {
  constructor(
    readonly baseUrl: string,
    public token: string,
    readonly headers: Record<string, string> = {},
  ) {}

  async request(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<ScimResponse> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...this.headers, ...extraHeaders };
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/scim+json';
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', location: res.headers.get('location'), text, body: parsed };
  }

  get = (path: string, extra?: Record<string, string>) => this.request('GET', path, undefined, extra);
  post = (path: string, body: unknown, extra?: Record<string, string>) => this.request('POST', path, body, extra);
  put = (path: string, body: unknown, extra?: Record<string, string>) => this.request('PUT', path, body, extra);
  patch = (path: string, body: unknown, extra?: Record<string, string>) => this.request('PATCH', path, body, extra);
  delete = (path: string, extra?: Record<string, string>) => this.request('DELETE', path, undefined, extra);
}

/** `GET /Users?filter=...` with the filter percent-encoded as a browser or Okta would (spaces as %20). */
export function filterQuery(filter: string, extra = ''): string {
  return `?filter=${encodeURIComponent(filter)}${extra}`;
}

/** RFC 7644 §3.1 / §8.1: SCIM responses carry the application/scim+json media type. */
export function expectScimJson(res: ScimResponse): void {
  expect(res.contentType, `Content-Type of a ${res.status} response: ${res.text}`).toMatch(/^application\/scim\+json\b/);
}

/** The response status, with the body in the failure message. */
export function expectStatus(res: ScimResponse, status: number | number[]): void {
  const wanted = Array.isArray(status) ? status : [status];
  expect(wanted, `status ${res.status}, body: ${res.text}`).toContain(res.status);
}

/**
 * RFC 7644 §3.4.2: a ListResponse. For /Users and /Groups, Okta's reference ("Retrieve Users": "The
 * itemsPerPage, startIndex, and totalResults values need to be exchanged as integers") and its spec test
 * check all three paging fields as numbers; pass paging=false for discovery lists, where RFC 7644 requires
 * only totalResults.
 */
export function expectListResponse(res: ScimResponse, totalResults?: number, paging = true): any[] {
  expectStatus(res, 200);
  expectScimJson(res);
  expect(res.body.schemas).toEqual([LIST_SCHEMA]);
  expect(Number.isInteger(res.body.totalResults), `totalResults ${JSON.stringify(res.body.totalResults)}`).toBe(true);
  const resources: any[] = res.body.Resources ?? [];
  expect(Array.isArray(resources)).toBe(true);
  if (totalResults !== undefined) expect(res.body.totalResults).toBe(totalResults);
  if (res.body.totalResults > 0) expect(Array.isArray(res.body.Resources)).toBe(true);
  if (paging) {
    expect(Number.isInteger(res.body.itemsPerPage), `itemsPerPage ${JSON.stringify(res.body.itemsPerPage)}`).toBe(true);
    expect(Number.isInteger(res.body.startIndex), `startIndex ${JSON.stringify(res.body.startIndex)}`).toBe(true);
    // "itemsPerPage: The number of resources returned in a list response page."
    expect(res.body.itemsPerPage).toBe(resources.length);
  }
  return resources;
}

/** RFC 7644 §3.12: an error response (schemas Error, status as a JSON string, a detail). */
export function expectScimError(res: ScimResponse, status: number, scimType?: string): void {
  expectStatus(res, status);
  expectScimJson(res);
  expect(res.body?.schemas).toEqual([ERROR_SCHEMA]);
  expect(res.body.status).toBe(String(status));
  expect(typeof res.body.detail).toBe('string');
  expect(res.body.detail.length).toBeGreaterThan(0);
  if (scimType) expect(res.body.scimType).toBe(scimType);
}

/** A User or Group resource as RFC 7643 §3.1 and RFC 7644 §3.3 describe it: id, schemas, meta. */
export function expectResource(res: ScimResponse, type: 'User' | 'Group', baseUrl: string): any {
  expectScimJson(res);
  const r = res.body;
  expect(typeof r.id).toBe('string');
  expect(r.id.length).toBeGreaterThan(0);
  expect(r.schemas).toContain(type === 'User' ? USER_SCHEMA : GROUP_SCHEMA);
  expect(r.meta).toMatchObject({ resourceType: type, location: `${baseUrl}/${type}s/${r.id}` });
  return r;
}

/** A PATCH answered as RFC 7644 §3.5.2 allows: 200 with the resource, or 204 without a body. */
export function expectPatched(res: ScimResponse, type: 'User' | 'Group', baseUrl: string): any | undefined {
  expectStatus(res, [200, 204]);
  if (res.status === 204) {
    expect(res.text).toBe('');
    return undefined;
  }
  return expectResource(res, type, baseUrl);
}

export async function createScimIntegration(cli: CliHarness, tenant: string, ...options: string[]): Promise<ScimIntegration> {
  const created = await cli.json<ScimIntegration>(['integration', 'create', '--tenant', tenant, '--provider', 'scim', ...options]);
  expect(created).toMatchObject({ provider: 'scim', scimBaseUrl: `http://127.0.0.1:${cli.port}/scim/v2/${created.id}` });
  expect(typeof created.scimToken).toBe('string');
  expect(created.scimToken.length).toBeGreaterThanOrEqual(20);
  return created;
}

export const tenantUsers = (cli: CliHarness, tenant: string) => cli.json<TenantUser[]>(['users', '--tenant', tenant]);
export const tenantGroups = (cli: CliHarness, tenant: string) => cli.json<TenantGroup[]>(['groups', '--tenant', tenant]);
export const runs = (cli: CliHarness, integrationId: string) => cli.json<RunSummaryJson[]>(['runs', integrationId]);

/** Polls `dirsync users` until `check` holds for the account named userName (case-insensitive), and returns it. */
export async function waitForUser(cli: CliHarness, tenant: string, userName: string, what: string, check: (u: TenantUser) => boolean, timeoutMs = 15_000): Promise<TenantUser> {
  let last: TenantUser[] = [];
  return waitFor(
    `${what} (${userName} in dirsync users --tenant ${tenant})`,
    async () => {
      last = await tenantUsers(cli, tenant);
      const u = last.find((x) => x.userName.toLowerCase() === userName.toLowerCase());
      return u && check(u) ? u : undefined;
    },
    { timeoutMs, intervalMs: 250, context: () => `last dirsync users: ${JSON.stringify(last)}` },
  );
}

/** Polls `dirsync users` until `check` holds for the whole list (one CLI call a poll). */
export async function waitForUsers(cli: CliHarness, tenant: string, what: string, check: (us: TenantUser[]) => boolean, timeoutMs = 15_000): Promise<TenantUser[]> {
  let last: TenantUser[] = [];
  return waitFor(
    `${what} (dirsync users --tenant ${tenant})`,
    async () => {
      last = await tenantUsers(cli, tenant);
      return check(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 250, context: () => `last dirsync users: ${JSON.stringify(last)}` },
  );
}

/** Polls `dirsync groups` until `check` holds for the whole list. */
export async function waitForGroups(cli: CliHarness, tenant: string, what: string, check: (gs: TenantGroup[]) => boolean, timeoutMs = 15_000): Promise<TenantGroup[]> {
  let last: TenantGroup[] = [];
  return waitFor(
    `${what} (dirsync groups --tenant ${tenant})`,
    async () => {
      last = await tenantGroups(cli, tenant);
      return check(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 250, context: () => `last dirsync groups: ${JSON.stringify(last)}` },
  );
}

/** Waits until no run of the integration is queued or running, and returns `dirsync runs`. */
export async function waitForIdle(cli: CliHarness, integrationId: string, timeoutMs = 15_000): Promise<RunSummaryJson[]> {
  let last: RunSummaryJson[] = [];
  return waitFor(
    `runs of ${integrationId} to settle`,
    async () => {
      last = await runs(cli, integrationId);
      return last.every((r) => !['queued', 'running'].includes(r.status)) ? last : undefined;
    },
    { timeoutMs, intervalMs: 250, context: () => `last dirsync runs: ${JSON.stringify(last)}` },
  );
}

/** The counts of the given runs added up: triggers coalesce, so one step may be one run or several. */
export function sumCounts(rs: RunSummaryJson[]): typeof ZERO_COUNTS {
  const total = { ...ZERO_COUNTS };
  for (const r of rs) for (const k of Object.keys(total) as (keyof typeof ZERO_COUNTS)[]) total[k] += r.counts?.[k] ?? 0;
  return total;
}

export const sortedMembers = (g: TenantGroup | undefined) => [...(g?.members ?? [])].sort();
