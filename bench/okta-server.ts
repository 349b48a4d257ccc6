/**
 * A fake Okta for benchmarks, in a process of its own (so the sync's memory and CPU are
 * measured apart from it): serves a generated directory in Okta's wire format with Link
 * paging, counts requests, and switches to the churned directory on POST /_bench/churn.
 *
 *   node dist-bench/bench/okta-server.js <users> <groups> <memberships>   (prints its URL)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type BenchDirectory, type BenchUser, churn, generate } from './workload.js';

const [users, groups, memberships] = process.argv.slice(2).map(Number) as [number, number, number];
const base = generate({ users, groups, memberships });
let dir: BenchDirectory = base;
let requests = 0;
let url = '';
const APP = '0oaBench';
const TOKEN = 'bench-token';

const T0 = '2024-01-01T00:00:00.000Z';
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

function page(res: import('node:http').ServerResponse, reqUrl: URL, total: number, maxLimit: number, item: (i: number) => unknown): void {
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
  res.writeHead(200, {
    'content-type': 'application/json',
    link: links,
    date: new Date().toUTCString(),
    'x-rate-limit-limit': '100000',
    'x-rate-limit-remaining': '99999',
    'x-rate-limit-reset': String(Math.floor(Date.now() / 1000) + 60),
  });
  res.end(`[${parts.join(',')}]`);
}

const server = createServer((req, res) => {
  const reqUrl = new URL(req.url ?? '/', url);
  const path = reqUrl.pathname;
  if (path === '/_bench/churn' && req.method === 'POST') {
    dir = churn(base).dir;
    return void res.end('{}');
  }
  if (path === '/_bench/reset' && req.method === 'POST') {
    dir = base;
    return void res.end('{}');
  }
  if (path === '/_bench/stats') return void res.end(JSON.stringify({ requests }));
  requests += 1;
  if (req.headers.authorization !== `SSWS ${TOKEN}`) {
    res.writeHead(401, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ errorCode: 'E0000011', errorSummary: 'Invalid token provided' }));
  }
  if (path === `/api/v1/apps/${APP}/users`) {
    return page(res, reqUrl, dir.users.length, 500, (i) => {
      const u = dir.users[i]!;
      return { id: u.id, scope: 'USER', status: 'PROVISIONED', credentials: { userName: u.login }, profile: {}, _embedded: { user: userJson(u) } };
    });
  }
  if (path === `/api/v1/apps/${APP}/groups`) {
    return page(res, reqUrl, dir.groups.length, 200, (i) => {
      const g = dir.groups[i]!;
      // A group whose members the churn moved has a newer lastMembershipUpdated, as in Okta.
      const lastMembershipUpdated = dir.members[i] === base.members[i] ? T0 : '2024-06-01T00:00:00.000Z';
      return { id: g.id, priority: 0, profile: {}, _embedded: { group: { id: g.id, type: 'OKTA_GROUP', lastMembershipUpdated, profile: { name: g.name, description: null } } } };
    });
  }
  const groupsOfUser = path.match(/^\/api\/v1\/users\/([^/]+)\/groups$/);
  if (groupsOfUser) {
    const index = dir.users.findIndex((u) => u.id === groupsOfUser[1]);
    const list = dir.groups.filter((_, g) => index >= 0 && binarySearch(dir.members[g]!, index));
    return page(res, reqUrl, list.length, 10_000, (i) => ({ id: list[i]!.id, type: 'OKTA_GROUP', profile: { name: list[i]!.name, description: null } }));
  }
  const members = path.match(/^\/api\/v1\/groups\/([^/]+)\/users$/);
  if (members) {
    const g = dir.groups.findIndex((x) => x.id === members[1]);
    const list = dir.members[g] ?? new Int32Array();
    return page(res, reqUrl, list.length, 1000, (i) => userJson(dir.users[list[i]!]!));
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ errorCode: 'E0000007', errorSummary: 'Not found' }));
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
