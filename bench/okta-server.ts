/**
 * A fake Okta for benchmarks, in a process of its own (so the sync's memory and CPU are
 * measured apart from it): serves a generated directory in Okta's wire format with Link
 * paging, counts requests per rate-limit bucket, and changes the directory on request, logging
 * each change in its System Log as Okta does.
 *
 *   node dist-bench/bench/okta-server.js <users> <groups> <memberships> [--latency-ms 0] [--limits none|okta]
 *   (prints its URL)
 *
 * Reads: app users and groups (lists and one by id), a user by id or login, a user's groups, a
 * group's members, and the System Log in its polling form (`since` or `after`, a `next` link on
 * every page, empty pages included). `filter` on the log is not applied: only changes are logged.
 *
 * Control (not counted, no latency): POST /_bench/churn (1% churn, logged), /_bench/reset (the
 * generated directory again, not logged), /_bench/deactivate?id= (one user DEPROVISIONED,
 * logged; answers the event), /_bench/hire (a new user assigned to the app, logged; answers
 * `{id, login, events}`), /_bench/config?latencyMs=&limits=okta|none, /_bench/counters/reset;
 * GET /_bench/stats: `{requests, used, refused}` per bucket (okta-limits.ts).
 */
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { OKTA_ONE_APP_LIMITS, RateLimits } from './okta-limits.js';
import { type BenchDirectory, type BenchUser, churn, generate, userId } from './workload.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'latency-ms': { type: 'string', default: '0' }, limits: { type: 'string', default: 'none' } } });
const [users, groups, memberships] = positionals.map(Number) as [number, number, number];
const base = generate({ users, groups, memberships });
let dir: BenchDirectory = base;
let requests = 0;
let latencyMs = Number(values['latency-ms']);
const limits = new RateLimits(values.limits === 'okta' ? OKTA_ONE_APP_LIMITS : null);
let url = '';
const APP = '0oaBench';
const TOKEN = 'bench-token';

const T0 = '2024-01-01T00:00:00.000Z';
const T0_MS = Date.parse(T0);

// Lookups by id and login, and each group's membership version (Okta's lastMembershipUpdated).
let userIndex = new Map<string, number>();
let loginIndex = new Map<string, number>();
const groupIndex = new Map(base.groups.map((g, i) => [g.id, i]));
const memberVersion = new Int32Array(base.groups.length);
function indexUsers(): void {
  userIndex = new Map(dir.users.map((u, i) => [u.id, i]));
  loginIndex = new Map(dir.users.map((u, i) => [u.login.toLowerCase(), i]));
}
indexUsers();

/** A System Log event as Okta records it (the fields dirsync reads, and a few more). */
interface LogEvent {
  uuid: string;
  published: string;
  eventType: string;
  displayMessage: string;
  severity: 'INFO';
  actor: { id: string; type: string; alternateId: string; displayName: string };
  outcome: { result: 'SUCCESS' };
  target: { id: string; type: string; alternateId: string; displayName: string }[];
}
const log: LogEvent[] = [];
const userTarget = (u: BenchUser) => ({ id: u.id, type: 'User', alternateId: u.login, displayName: `${u.firstName} ${u.lastName}` });
const appTarget = { id: APP, type: 'AppInstance', alternateId: 'Bench app', displayName: 'Bench app' };
function record(eventType: string, target: LogEvent['target']): LogEvent {
  const event: LogEvent = {
    uuid: randomUUID(),
    published: new Date().toISOString(),
    eventType,
    displayMessage: eventType,
    severity: 'INFO',
    actor: { id: '00u1admin', type: 'User', alternateId: 'admin@bench.example.com', displayName: 'Admin' },
    outcome: { result: 'SUCCESS' },
    target,
  };
  log.push(event);
  return event;
}

/** The users array, copied on first change so that reset can go back to the generated one. */
function ownUsers(): BenchUser[] {
  if (dir.users === base.users) dir = { ...dir, users: base.users.slice() };
  return dir.users;
}

function userJson(u: BenchUser) {
  return {
    id: u.id,
    status: u.status,
    created: T0,
    activated: T0,
    statusChanged: T0,
    lastLogin: null,
    lastUpdated: T0,
    passwordChanged: T0,
    type: { id: 'oty1default' },
    profile: { firstName: u.firstName, lastName: u.lastName, mobilePhone: null, secondEmail: null, login: u.login, email: u.email, department: u.department },
    credentials: { provider: { type: 'OKTA', name: 'OKTA' } },
    _links: { self: { href: `${url}/api/v1/users/${u.id}` } },
  };
}

function appUserJson(u: BenchUser) {
  return { id: u.id, scope: 'USER', status: 'PROVISIONED', credentials: { userName: u.login }, profile: {}, _embedded: { user: userJson(u) } };
}

function appGroupJson(g: number) {
  const group = dir.groups[g]!;
  // A group whose members changed has a newer lastMembershipUpdated, as in Okta.
  const lastMembershipUpdated = new Date(T0_MS + memberVersion[g]! * 60_000).toISOString();
  return { id: group.id, priority: 0, profile: {}, _embedded: { group: { id: group.id, type: 'OKTA_GROUP', lastMembershipUpdated, profile: { name: group.name, description: null } } } };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', date: new Date().toUTCString(), ...headers });
  res.end(JSON.stringify(body));
}

function page(res: ServerResponse, reqUrl: URL, total: number, maxLimit: number, item: (i: number) => unknown, headers: Record<string, string>): void {
  const limit = Math.min(Number(reqUrl.searchParams.get('limit') ?? maxLimit) || maxLimit, maxLimit);
  const after = Number(reqUrl.searchParams.get('after') ?? 0);
  const end = Math.min(total, after + limit);
  const parts: string[] = [];
  for (let i = after; i < end; i++) parts.push(JSON.stringify(item(i)));
  const links = [`<${url}${reqUrl.pathname}${reqUrl.search}>; rel="self"`];
  if (end < total) {
    const next = new URL(reqUrl.toString());
    next.searchParams.set('after', String(end));
    links.push(`<${url}${next.pathname}${next.search}>; rel="next"`);
  }
  res.writeHead(200, { 'content-type': 'application/json', link: links, date: new Date().toUTCString(), ...headers });
  res.end(`[${parts.join(',')}]`);
}

/**
 * The System Log's polling form: from `after` (an index, opaque to clients) or the first event
 * published at or after `since`; a `next` link on every page, an empty one too (IDP-FACTS
 * "Okta System Log").
 */
function logPage(res: ServerResponse, reqUrl: URL, headers: Record<string, string>): void {
  const limit = Math.min(Number(reqUrl.searchParams.get('limit') ?? 100) || 100, 1000);
  const afterParam = reqUrl.searchParams.get('after');
  let start: number;
  if (afterParam !== null) start = Number(afterParam);
  else {
    const since = Date.parse(reqUrl.searchParams.get('since') ?? '');
    if (Number.isNaN(since)) return json(res, 400, { errorCode: 'E0000001', errorSummary: 'Api validation failed: since' }, headers);
    start = log.findIndex((e) => Date.parse(e.published) >= since);
    if (start < 0) start = log.length;
  }
  const end = Math.min(log.length, start + limit);
  const next = new URL(reqUrl.toString());
  next.searchParams.delete('since');
  next.searchParams.set('after', String(end));
  const links = [`<${url}${reqUrl.pathname}${reqUrl.search}>; rel="self"`, `<${url}${next.pathname}${next.search}>; rel="next"`];
  res.writeHead(200, { 'content-type': 'application/json', link: links, date: new Date().toUTCString(), ...headers });
  res.end(JSON.stringify(log.slice(start, end)));
}

function control(path: string, reqUrl: URL, res: ServerResponse): void {
  if (path === '/_bench/stats') return json(res, 200, { requests, used: limits.used, refused: limits.refused, logged: log.length });
  if (path === '/_bench/counters/reset') {
    requests = 0;
    limits.reset();
    return json(res, 200, {});
  }
  if (path === '/_bench/config') {
    if (reqUrl.searchParams.has('latencyMs')) latencyMs = Number(reqUrl.searchParams.get('latencyMs'));
    if (reqUrl.searchParams.has('limits')) limits.limits = reqUrl.searchParams.get('limits') === 'okta' ? OKTA_ONE_APP_LIMITS : null;
    limits.reset();
    return json(res, 200, { latencyMs, limits: limits.limits });
  }
  if (path === '/_bench/reset') {
    dir = base;
    memberVersion.fill(0);
    indexUsers();
    return json(res, 200, {});
  }
  if (path === '/_bench/churn') {
    const before = dir;
    const share = Number(reqUrl.searchParams.get('share') ?? '0.01');
    if (!(share > 0 && share <= 1)) return json(res, 400, { error: 'share must be in (0, 1]' });
    const changed = churn(before, 7, share);
    dir = changed.dir;
    indexUsers();
    return json(res, 200, { ...logChurn(before, dir), created: changed.created, updated: changed.updated, removed: changed.removed, moved: changed.moved });
  }
  if (path === '/_bench/deactivate') {
    const i = userIndex.get(reqUrl.searchParams.get('id') ?? '');
    if (i === undefined) return json(res, 404, { error: 'no such user' });
    const list = ownUsers();
    list[i] = { ...list[i]!, status: 'DEPROVISIONED' };
    return json(res, 200, { event: record('user.lifecycle.deactivate', [userTarget(list[i]!)]) });
  }
  if (path === '/_bench/hire') {
    const list = ownUsers();
    const i = list.length;
    const login = `hire${i}@bench.example.com`;
    const u: BenchUser = { id: userId(i), status: 'ACTIVE', login, email: login, firstName: `Hire${i}`, lastName: 'New', department: 'Engineering' };
    list.push(u);
    userIndex.set(u.id, i);
    loginIndex.set(login, i);
    const events = [record('user.lifecycle.create', [userTarget(u)]), record('application.user_membership.add', [appTarget, userTarget(u)])];
    return json(res, 200, { id: u.id, login, events });
  }
  json(res, 404, { error: 'unknown control' });
}

/** Logs what a churn changed, as Okta would have logged each change; answers how many events. */
function logChurn(before: BenchDirectory, after: BenchDirectory): { events: number; users: number } {
  const start = log.length;
  const touched = new Set<string>();
  for (let i = 0; i < after.users.length; i++) {
    const was = before.users[i];
    const now = after.users[i]!;
    if (was === now) continue;
    touched.add(now.id);
    if (!was) {
      record('user.lifecycle.create', [userTarget(now)]);
      record('application.user_membership.add', [appTarget, userTarget(now)]);
    } else if (was.status !== now.status) record('user.lifecycle.deactivate', [userTarget(now)]);
    else record('user.account.update_profile', [userTarget(now)]);
  }
  for (let g = 0; g < after.members.length; g++) {
    const was = before.members[g]!;
    const now = after.members[g]!;
    if (was === now) continue;
    memberVersion[g]! += 1;
    const group = { id: after.groups[g]!.id, type: 'UserGroup', alternateId: after.groups[g]!.name, displayName: after.groups[g]!.name };
    const old = new Set(was);
    const cur = new Set(now);
    for (const u of now) if (!old.has(u)) (touched.add(after.users[u]!.id), record('group.user_membership.add', [userTarget(after.users[u]!), group]));
    for (const u of was) if (!cur.has(u)) (touched.add(after.users[u]!.id), record('group.user_membership.remove', [userTarget(after.users[u]!), group]));
  }
  return { events: log.length - start, users: touched.size };
}

function api(req: IncomingMessage, res: ServerResponse, reqUrl: URL, headers: Record<string, string>): void {
  const path = reqUrl.pathname;
  if (req.headers.authorization !== `SSWS ${TOKEN}`) return json(res, 401, { errorCode: 'E0000011', errorSummary: 'Invalid token provided' }, headers);
  const notFound = () => json(res, 404, { errorCode: 'E0000007', errorSummary: `Not found: Resource not found: ${path}` }, headers);
  if (path === `/api/v1/apps/${APP}/users`) return page(res, reqUrl, dir.users.length, 500, (i) => appUserJson(dir.users[i]!), headers);
  if (path === `/api/v1/apps/${APP}/groups`) return page(res, reqUrl, dir.groups.length, 200, appGroupJson, headers);
  if (path === '/api/v1/logs') return logPage(res, reqUrl, headers);
  const appUser = path.match(/^\/api\/v1\/apps\/0oaBench\/users\/([^/]+)$/);
  if (appUser) {
    const i = userIndex.get(decodeURIComponent(appUser[1]!));
    return i === undefined ? notFound() : json(res, 200, appUserJson(dir.users[i]!), headers);
  }
  const appGroup = path.match(/^\/api\/v1\/apps\/0oaBench\/groups\/([^/]+)$/);
  if (appGroup) {
    const g = groupIndex.get(appGroup[1]!);
    return g === undefined ? notFound() : json(res, 200, appGroupJson(g), headers);
  }
  const groupsOfUser = path.match(/^\/api\/v1\/users\/([^/]+)\/groups$/);
  if (groupsOfUser) {
    const index = userIndex.get(groupsOfUser[1]!);
    if (index === undefined) return notFound();
    const list = dir.groups.filter((_, g) => binarySearch(dir.members[g]!, index));
    return page(res, reqUrl, list.length, 10_000, (i) => ({ id: list[i]!.id, type: 'OKTA_GROUP', profile: { name: list[i]!.name, description: null } }), headers);
  }
  const oneUser = path.match(/^\/api\/v1\/users\/([^/]+)$/);
  if (oneUser) {
    // Okta takes a login in place of the id.
    const key = decodeURIComponent(oneUser[1]!);
    const i = userIndex.get(key) ?? loginIndex.get(key.toLowerCase());
    return i === undefined ? notFound() : json(res, 200, userJson(dir.users[i]!), headers);
  }
  const members = path.match(/^\/api\/v1\/groups\/([^/]+)\/users$/);
  if (members) {
    const g = groupIndex.get(members[1]!);
    const list = (g === undefined ? undefined : dir.members[g]) ?? new Int32Array();
    return page(res, reqUrl, list.length, 1000, (i) => userJson(dir.users[list[i]!]!), headers);
  }
  notFound();
}

const server = createServer((req, res) => {
  const reqUrl = new URL(req.url ?? '/', url);
  if (reqUrl.pathname.startsWith('/_bench/')) return control(reqUrl.pathname, reqUrl, res);
  requests += 1;
  // The bucket is charged on arrival, as Okta counts a request when it gets it.
  const { refused, headers } = limits.admit(reqUrl.pathname);
  const answer = () =>
    refused ? json(res, 429, { errorCode: 'E0000047', errorSummary: 'API call exceeded rate limit due to too many requests.' }, headers) : api(req, res, reqUrl, headers);
  if (latencyMs > 0) setTimeout(answer, latencyMs);
  else answer();
});

function binarySearch(sorted: Int32Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === value) return true;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

server.listen(0, '127.0.0.1', () => {
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.stdout.write(`${url}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
