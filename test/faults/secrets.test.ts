import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type CliResult, type RunSummaryJson } from '../support/cli.js';
import { TEST_KEY } from '../support/env.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { authentikMappedBody, oktaDelivery } from '../support/webhook-bodies.js';
import { recordFigures } from './support/figures.js';
import { DirsyncProcess } from '../support/processes.js';
import { serviceAppKey } from '../support/okta-oauth.js';

/**
 * Drives the whole product with known secrets and looks for them everywhere an operator or an
 * attacker could: every CLI output, the server's and worker's logs at debug level, every HTTP
 * answer (admin API, pages, metrics, health), every row of every table and every key of the
 * queue in Redis. A webhook secret may appear exactly where it is issued, once; nothing else,
 * ever, anywhere.
 */

const cli = new CliHarness();
const hex = (n: number) => randomBytes(n).toString('hex');

const OKTA_TOKEN = `00oktaTOKEN${hex(12)}`;
const OKTA_TOKEN_2 = `00oktaROTATED${hex(12)}`;
const OKTA_TOKEN_API = `00oktaAPI${hex(12)}`;
const OKTA_WRONG = `00oktaWRONG${hex(12)}`;
const AK_TOKEN = `akTOKEN${hex(16)}`;
const AK_WRONG = `akWRONG${hex(16)}`;
const ADMIN_TOKEN = `admin-${hex(16)}`;
const WRONG_WEBHOOK_SECRET = `wrongHOOK${hex(16)}`;
const ENCRYPTION_KEY = TEST_KEY;
const SERVICE_APP_KEY = serviceAppKey('rsa');
const SERVICE_APP_KEY_FILE = path.join(mkdtempSync(path.join(tmpdir(), 'dirsync-secrets-')), 'service-app.pem');

/** Everything the product must never show; webhook secrets are added as they are issued. */
const secrets = new Map<string, string>([
  ['Okta token', OKTA_TOKEN],
  ['second Okta token', OKTA_TOKEN_2],
  ['Okta token given through the admin API', OKTA_TOKEN_API],
  ['wrong Okta token', OKTA_WRONG],
  ['authentik token', AK_TOKEN],
  ['wrong authentik token', AK_WRONG],
  ['DIRSYNC_ADMIN_TOKEN', ADMIN_TOKEN],
  ['wrong webhook secret', WRONG_WEBHOOK_SECRET],
  ['DIRSYNC_ENCRYPTION_KEY', ENCRYPTION_KEY],
  ["Okta service app's private key (JWK d)", (JSON.parse(SERVICE_APP_KEY.privateJwk) as { d: string }).d],
  ["Okta service app's private key (PEM)", SERVICE_APP_KEY.privatePem.split('\n')[1]!],
]);

/** The ways a secret could be written down: as is, in base64, and as hex (how Postgres prints bytea). */
function forms(secret: string): { text: string; hex: boolean }[] {
  const utf8 = Buffer.from(secret, 'utf8');
  const list = [
    { text: secret, hex: false },
    { text: utf8.toString('base64').replace(/=+$/, ''), hex: false },
    { text: utf8.toString('base64url'), hex: false },
    { text: utf8.toString('hex'), hex: true },
  ];
  if (secret === ENCRYPTION_KEY) {
    const raw = Buffer.from(secret, 'base64');
    list.push({ text: raw.toString('base64url'), hex: false }, { text: raw.toString('hex'), hex: true });
  }
  return list;
}

function occurrences(haystack: string, secret: string): number {
  const lower = haystack.toLowerCase();
  return forms(secret).reduce((n, form) => n + (form.hex ? lower : haystack).split(form.text).length - 1, 0);
}

/** Names of the secrets found in `text`. */
function leaks(text: string): string[] {
  return [...secrets].filter(([, s]) => occurrences(text, s) > 0).map(([name]) => name);
}

/** What someone could see: a CLI call's output or an HTTP answer. `issues` names the webhook secret it hands out, if any. */
interface Seen {
  readonly label: string;
  readonly text: string;
  /** Where the issued secret may appear (stdout or the response body), once. */
  readonly issuedIn?: string;
  readonly issues?: string;
}
const seen: Seen[] = [];
let issuedCount = 0;

/** Argument lists without their secrets, for labels. */
function label(args: string[]): string {
  return args.map((a) => ([...secrets.values()].includes(a) ? '<secret>' : a)).join(' ');
}

async function dirsync(args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
  const result = await cli.run(args, { LOG_LEVEL: 'debug', DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN, ...extra });
  seen.push({ label: `dirsync ${label(args)}`, text: `${result.stdout}\n${result.stderr}` });
  return result;
}

async function json<T>(args: string[]): Promise<T> {
  const result = await dirsync([...args, '--json']);
  if (result.code !== 0) throw new Error(`dirsync ${label(args)} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** A command that hands out a webhook secret: the secret is recorded, and allowed in that stdout only. */
async function issuing(name: string, args: string[], read: (stdout: string) => string): Promise<string> {
  const result = await cli.run(args, { LOG_LEVEL: 'debug', DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN });
  if (result.code !== 0) throw new Error(`dirsync ${label(args)} failed (${result.code}): ${result.stderr}`);
  const secret = read(result.stdout);
  expect(secret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  secrets.set(name, secret);
  issuedCount += 1;
  seen.push({ label: `dirsync ${label(args)} (stderr)`, text: result.stderr });
  seen.push({ label: `dirsync ${label(args)}`, text: result.stdout, issuedIn: result.stdout, issues: name });
  return secret;
}

interface HttpSeen {
  status: number;
  body: string;
  headers: Headers;
}

/** Any HTTP call to dirsync; the status line, headers and body are all recorded as seen. */
async function http(path: string, init: RequestInit & { issues?: string } = {}): Promise<HttpSeen> {
  const res = await fetch(`http://127.0.0.1:${cli.port}${path}`, { redirect: 'manual', ...init });
  const body = await res.text();
  const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
  const text = `${res.status}\n${headerText}\n\n${body}`;
  if (init.issues) {
    const secret = (JSON.parse(body) as { webhookSecret: string }).webhookSecret;
    secrets.set(init.issues, secret);
    issuedCount += 1;
    seen.push({ label: `${init.method ?? 'GET'} ${path}`, text, issuedIn: body, issues: init.issues });
  } else {
    seen.push({ label: `${init.method ?? 'GET'} ${path}`, text });
  }
  return { status: res.status, body, headers: res.headers };
}

const admin = (path: string, init: RequestInit & { issues?: string } = {}) =>
  http(path, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers } });

// `dirsync start` at debug level, with stdout and stderr kept apart: pino writes to stderr, but
// anything printed to stdout (a stray console.log) counts just as much.
let server: DirsyncProcess | undefined;

const startServer = async () => {
  server = await new DirsyncProcess(cli, 'start', { LOG_LEVEL: 'debug', DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN }).start();
};
const stopServer = async () => server?.stop();

let okta: FakeOkta;
let ak: FakeAuthentik;
let oktaId: string;
let akId: string;
let serviceAppId: string;
let apiId: string;
const runIds: string[] = [];

beforeAll(async () => {
  okta = await new FakeOkta().start();
  okta.token = OKTA_TOKEN;
  const app = okta.addApp('0oaSecrets');
  const ann = okta.addUser('ann.lee@secrets.test', { id: '00uAnn' });
  const bob = okta.addUser('bob.king@secrets.test', { id: '00uBob' });
  const eng = okta.addGroup('Engineering', { id: '00gEng' });
  okta.addMember(eng.id, ann.id);
  okta.addMember(eng.id, bob.id);
  app.users.add(ann.id);
  app.users.add(bob.id);
  app.groups.add(eng.id);
  okta.serviceApp = { clientId: '0oaSecretsSvc', publicKey: SERVICE_APP_KEY.publicKey, grantedScopes: new Set(['okta.users.read', 'okta.groups.read', 'okta.apps.read']), dpop: true };
  writeFileSync(SERVICE_APP_KEY_FILE, SERVICE_APP_KEY.privatePem, { mode: 0o600 });

  ak = await new FakeAuthentik().start();
  ak.token = AK_TOKEN;
  const cat = ak.addUser('cat.ray@secrets.test', { pk: 31 });
  const ops = ak.addGroup('Ops');
  ak.addMember(ops.pk, cat.pk);
  ak.addApp('wiki');
  ak.bind('wiki', { group: ops.pk });

  expect((await dirsync(['migrate'])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  await stopServer();
  await okta?.stop();
  await ak?.stop();
  await cli.stop();
});

describe('secrets never leak', () => {
  it('creates, lists, shows and updates integrations of both providers', async () => {
    await Promise.all([json(['tenant', 'create', 'acme']), json(['tenant', 'create', 'globex', '--name', 'Globex'])]);
    await dirsync(['tenant', 'list']);

    await issuing('Okta webhook secret', ['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url, '--token', OKTA_TOKEN, '--okta-app-id', '0oaSecrets', '--json'], (stdout) => {
      const created = JSON.parse(stdout) as { id: string; webhookSecret: string };
      oktaId = created.id;
      return created.webhookSecret;
    });
    await issuing(
      'service app webhook secret',
      ['integration', 'create', '--tenant', 'globex', '--provider', 'okta', '--base-url', okta.url, '--okta-client-id', '0oaSecretsSvc', '--okta-private-key-file', SERVICE_APP_KEY_FILE, '--okta-app-id', '0oaSecrets', '--json'],
      (stdout) => {
        const created = JSON.parse(stdout) as { id: string; webhookSecret: string };
        serviceAppId = created.id;
        return created.webhookSecret;
      },
    );
    // The human rendering prints the secret on its own line.
    await issuing('authentik webhook secret', ['integration', 'create', '--tenant', 'globex', '--provider', 'authentik', '--base-url', ak.url, '--token', AK_TOKEN, '--authentik-app', 'wiki'], (stdout) => {
      akId = /^created integration ([0-9a-f-]{36})/m.exec(stdout)![1]!;
      return /^webhook secret: +(\S+)$/m.exec(stdout)![1]!;
    });

    await Promise.all([
      dirsync(['integration', 'list']),
      dirsync(['integration', 'list', '--json']),
      dirsync(['integration', 'list', '--tenant', 'acme', '--json']),
      dirsync(['integration', 'show', oktaId]),
      dirsync(['integration', 'show', oktaId, '--json']),
      dirsync(['integration', 'show', akId]),
      dirsync(['integration', 'show', akId, '--json']),
    ]);

    okta.token = OKTA_TOKEN_2;
    const updated = await json<Record<string, unknown>>(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2, '--every', '1h']);
    expect(updated).toMatchObject({ id: oktaId, schedule: 'every 1h' });
    expect(Object.keys(updated)).not.toContain('token');
    expect((await dirsync(['integration', 'update', akId, '--token', AK_TOKEN, '--threshold', '50'])).code).toBe(0);
    // Rejected updates that carry a token: the error names the bad option, never the token.
    const rejected = await Promise.all([
      dirsync(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2, '--every', 'often']),
      dirsync(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2, '--authentik-app', 'wiki']),
      dirsync(['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', 'ftp://x', '--token', OKTA_TOKEN_2]),
      dirsync(['integration', 'create', '--tenant', 'nope', '--provider', 'okta', '--base-url', okta.url, '--token', OKTA_TOKEN_2]),
      dirsync(['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url, '--token', OKTA_TOKEN_2], { DIRSYNC_ENCRYPTION_KEY: '' }),
    ]);
    for (const r of rejected) expect(r.code).toBe(1);
  }, 180_000);

  it('syncs, fails on a wrong token without echoing it, and recovers', async () => {
    await startServer();
    const [first, second] = await Promise.all([json<RunSummaryJson>(['sync', oktaId, '--wait']), json<RunSummaryJson>(['sync', akId, '--wait'])]);
    // The 1h schedule set above fires as the worker starts: this run may find nothing left to do.
    expect(first).toMatchObject({ status: 'succeeded', error: null });
    expect(second).toMatchObject({ status: 'succeeded', error: null });
    runIds.push(first.id, second.id);
    // The service app, with DPoP: its key signs assertions and proofs, and is never written down.
    const viaServiceApp = await json<RunSummaryJson>(['sync', serviceAppId, '--wait']);
    expect(viaServiceApp).toMatchObject({ status: 'succeeded', error: null });
    runIds.push(viaServiceApp.id);

    // A wrong token is refused by the IdP check before it is stored, without being shown.
    const refused = await Promise.all([
      dirsync(['integration', 'update', oktaId, '--token', OKTA_WRONG]),
      dirsync(['integration', 'update', akId, '--token', AK_WRONG]),
    ]);
    expect(refused.map((r) => r.code)).toEqual([1, 1]);
    expect(refused[0]!.stderr).toMatch(/Okta rejected the API token/);
    expect(refused[1]!.stderr).toMatch(/authentik rejected the API token/);
    // Stored unchecked, the IdPs refuse it: the runs fail, saying the token was refused, without showing it.
    await Promise.all([
      dirsync(['integration', 'update', oktaId, '--token', OKTA_WRONG, '--no-verify']),
      dirsync(['integration', 'update', akId, '--token', AK_WRONG, '--no-verify']),
    ]);
    const [oktaFailed, akFailed] = await Promise.all([dirsync(['sync', oktaId, '--wait', '--json']), dirsync(['sync', akId, '--wait'])]);
    expect(oktaFailed.code).toBe(1);
    const oktaRun = JSON.parse(oktaFailed.stdout) as RunSummaryJson;
    expect(oktaRun).toMatchObject({ status: 'failed' });
    expect(oktaRun.error).toMatch(/HTTP 401 .*Okta rejected the API token/);
    expect(akFailed.code).toBe(1);
    expect(akFailed.stdout).toMatch(/status: +failed/);
    expect(akFailed.stdout).toMatch(/error: +authentik GET .* failed: HTTP 403/);
    runIds.push(oktaRun.id);

    // An IdP (or a proxy in front of it) that echoes the request's Authorization header in its
    // error: the run's error must not carry the token on.
    okta.fault = () => ({ status: 400, body: { errorCode: 'E0000001', errorSummary: `Bad request from SSWS ${OKTA_WRONG}`, errorCauses: [] } });
    const echoed = await dirsync(['sync', oktaId, '--wait', '--json']);
    okta.fault = undefined;
    const echoedRun = JSON.parse(echoed.stdout) as RunSummaryJson;
    expect(echoedRun.status).toBe('failed');
    expect(echoedRun.error).toMatch(/HTTP 400 .*Bad request from SSWS \[redacted\]/);
    runIds.push(echoedRun.id);

    await Promise.all([
      dirsync(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2]),
      dirsync(['integration', 'update', akId, '--token', AK_TOKEN]),
    ]);
    const [again, dry] = await Promise.all([json<RunSummaryJson>(['sync', akId, '--wait']), json<RunSummaryJson>(['sync', oktaId, '--wait', '--dry-run'])]);
    expect(again.status).toBe('succeeded');
    expect(dry).toMatchObject({ status: 'succeeded', dryRun: true });
    okta.updateUser('00uBob', { status: 'SUSPENDED' });
    const deprovisioned = await json<RunSummaryJson>(['sync', oktaId, '--wait']);
    expect(deprovisioned.counts.usersDeprovisioned).toBe(1);
    const queued = await dirsync(['sync', akId]);
    expect(queued.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    runIds.push(again.id, dry.id, deprovisioned.id, queued.stdout.trim());

    await Promise.all([
      dirsync(['runs', oktaId]),
      dirsync(['runs', akId, '--json']),
      // Every run as JSON; as text the ones whose rendering differs: failures and a change log.
      ...runIds.map((id) => dirsync(['run', 'show', id, '--json'])),
      ...[oktaRun.id, echoedRun.id, deprovisioned.id].map((id) => dirsync(['run', 'show', id])),
      dirsync(['users', '--tenant', 'acme']),
      dirsync(['users', '--tenant', 'globex', '--json']),
      dirsync(['groups', '--tenant', 'acme', '--json']),
      dirsync(['groups', '--tenant', 'globex']),
    ]);
  }, 180_000);

  it('takes webhook deliveries with the right secret and refuses wrong ones, recording only why', async () => {
    const firstOktaSecret = secrets.get('Okta webhook secret')!;
    const rotated = await issuing('rotated Okta webhook secret', ['integration', 'rotate-webhook-secret', oktaId, '--grace', '0', '--json'], (stdout) => (JSON.parse(stdout) as { webhookSecret: string }).webhookSecret);
    const akSecret = secrets.get('authentik webhook secret')!;
    const hook = (id: string) => `/webhooks/${id}`;
    const post = (id: string, authorization: string, body: unknown) =>
      http(hook(id), { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const deactivate = oktaDelivery([{ eventType: 'user.lifecycle.deactivate', target: [{ id: '00uAnn', type: 'User' }] }]);
    const akEvent = authentikMappedBody('model_updated', { app: 'authentik_core', model_name: 'user', pk: 31, name: 'cat' });

    const answers = await Promise.all([
      post(oktaId, rotated, deactivate),
      post(akId, `Bearer ${akSecret}`, akEvent),
      post(oktaId, WRONG_WEBHOOK_SECRET, deactivate),
      post(oktaId, `Bearer ${WRONG_WEBHOOK_SECRET}`, deactivate),
      post(oktaId, firstOktaSecret, deactivate),
      post(oktaId, `SSWS ${OKTA_TOKEN_2}`, deactivate),
      post(akId, `Bearer ${WRONG_WEBHOOK_SECRET}`, akEvent),
      post(akId, `Bearer ${ADMIN_TOKEN}`, akEvent),
      post(oktaId, WRONG_WEBHOOK_SECRET, { not: 'an okta delivery' }),
      post(akId, `Bearer ${WRONG_WEBHOOK_SECRET}`, 'not json at all'),
      http(hook(oktaId), { headers: { authorization: WRONG_WEBHOOK_SECRET, 'x-okta-verification-challenge': 'c-1' } }),
      http(hook(oktaId), { headers: { authorization: rotated, 'x-okta-verification-challenge': 'c-2' } }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401, 200]);
    await dirsync(['integration', 'disable', akId]);
    expect((await post(akId, `Bearer ${akSecret}`, akEvent)).status).toBe(403);
    expect((await post(akId, `Bearer ${WRONG_WEBHOOK_SECRET}`, akEvent)).status).toBe(401);
    await dirsync(['integration', 'enable', akId, '--json']);

    const deliveries = await json<{ outcome: string; detail: string | null; eventIds: string[] }[]>(['webhooks', oktaId]);
    expect(deliveries.filter((d) => d.outcome !== 'rejected').map((d) => d.outcome)).toEqual(['triggered']);
    // Refusals are listed with why (the status and reason), never with what was presented.
    const refusals = deliveries.filter((d) => d.outcome === 'rejected');
    expect(refusals.length).toBeGreaterThanOrEqual(5);
    expect(refusals.every((d) => /^HTTP 40[013]: /.test(d.detail ?? '') && d.eventIds.length === 0)).toBe(true);
    await Promise.all([dirsync(['webhooks', akId]), dirsync(['webhooks', oktaId])]);
    await issuing('rotated authentik webhook secret', ['integration', 'rotate-webhook-secret', akId], (stdout) => /: (\S+)$/.exec(stdout.trim())![1]!);

    // A scim integration's token: issued once, presented by the IdP, refused when wrong.
    let scimBase = '';
    const scimToken = await issuing('SCIM token', ['integration', 'create', '--tenant', 'acme', '--provider', 'scim', '--json'], (stdout) => {
      const created = JSON.parse(stdout) as { scimBaseUrl: string; scimToken: string };
      scimBase = new URL(created.scimBaseUrl).pathname;
      return created.scimToken;
    });
    const push = (authorization: string) =>
      http(`${scimBase}/Users`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/scim+json' },
        body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'scim.secret@acme.test', password: OKTA_WRONG /* never stored */ }),
      });
    expect((await push(`Bearer ${WRONG_WEBHOOK_SECRET}`)).status).toBe(401);
    expect((await push(`Bearer ${scimToken}`)).status).toBe(201);
    expect((await http(`${scimBase}/Users`, { headers: { authorization: `Bearer ${scimToken}` } })).status).toBe(200);
    await issuing('rotated SCIM token', ['integration', 'rotate-scim-token', scimBase.split('/').at(-1)!, '--grace', '0', '--json'], (stdout) => (JSON.parse(stdout) as { scimToken: string }).scimToken);
    expect((await push(`Bearer ${scimToken}`)).status).toBe(401);
  }, 180_000);

  it('answers the admin API, pages, metrics and health without a secret in any answer', async () => {
    // One more integration through the API: the token goes in, only the webhook secret comes out.
    const created = await admin('/api/v1/integrations', {
      method: 'POST',
      // A token the fake Okta does not know: stored unchecked, so it must not leak either.
      body: JSON.stringify({ tenant: 'acme', provider: 'okta', baseUrl: okta.url, token: OKTA_TOKEN_API, verify: false }),
      issues: 'API-created webhook secret',
    });
    expect(created.status).toBe(201);
    apiId = (JSON.parse(created.body) as { id: string }).id;

    const answers = await Promise.all([
      admin('/api/v1/openapi.json'),
      admin('/api/v1/tenants'),
      admin('/api/v1/integrations'),
      admin(`/api/v1/integrations?tenant=acme`),
      admin(`/api/v1/integrations/${oktaId}`),
      admin(`/api/v1/integrations/${akId}`),
      admin(`/api/v1/integrations/${apiId}`),
      admin(`/api/v1/integrations/${oktaId}/runs`),
      admin(`/api/v1/integrations/${akId}/runs`),
      admin(`/api/v1/integrations/${oktaId}/webhooks`),
      ...runIds.map((id) => admin(`/api/v1/runs/${id}`)),
      admin('/api/v1/tenants/acme/users'),
      admin('/api/v1/tenants/globex/groups'),
      admin(`/api/v1/integrations/${apiId}`, { method: 'PATCH', body: JSON.stringify({ token: OKTA_TOKEN_API, every: '2h' }) }),
      // Refused bodies that carry a token: the error names the problem, never the value.
      admin(`/api/v1/integrations/${apiId}`, { method: 'PATCH', body: JSON.stringify({ token: OKTA_TOKEN_API, every: 'often' }) }),
      admin(`/api/v1/integrations/${apiId}`, { method: 'PATCH', body: JSON.stringify({ token: OKTA_TOKEN_API, bogus: true }) }),
      admin(`/api/v1/integrations/${apiId}`, { method: 'PATCH', body: JSON.stringify({ token: OKTA_TOKEN_API, cron: 'nope' }) }),
      admin('/api/v1/integrations', { method: 'POST', body: JSON.stringify({ tenant: 'nope', provider: 'okta', baseUrl: okta.url, token: OKTA_TOKEN_API }) }),
      admin('/api/v1/integrations', { method: 'POST', body: `{"tenant":"acme","token":"${OKTA_TOKEN_API}"` }),
      // Wrong bearer tokens, among them the IdP tokens and webhook secrets.
      http('/api/v1/integrations', { headers: { authorization: `Bearer ${OKTA_TOKEN_2}` } }),
      http('/api/v1/integrations', { headers: { authorization: `Bearer ${secrets.get('rotated Okta webhook secret')}` } }),
      http('/api/v1/integrations', { headers: { authorization: ADMIN_TOKEN } }),
      http('/api/v1/tenants'),
      http('/metrics'),
      http('/healthz'),
      admin('/admin'),
      admin(`/admin/integrations/${oktaId}`),
      admin(`/admin/integrations/${akId}`),
      ...runIds.map((id) => admin(`/admin/runs/${id}`)),
      http('/admin'),
      http('/admin/login'),
      http('/admin/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${OKTA_TOKEN_2}&next=/admin` }),
      http('/admin/login?failed=1&next=/admin'),
      admin('/admin/queues'),
      admin(`/admin/queues/api/queues?activeQueue=${cli.queue}&status=latest&page=1`),
      admin(`/admin/queues/api/queues?activeQueue=${cli.queue}&status=failed&page=1`),
      admin(`/admin/queues/api/queues?activeQueue=${cli.queue}&status=completed&page=1`),
    ]);
    expect(answers.filter((a) => a.status >= 500).map((a) => a.body)).toEqual([]);
    const login = await http('/admin/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${ADMIN_TOKEN}&next=/admin` });
    expect(login.status).toBe(302);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    await http('/admin', { headers: { cookie } });

    const synced = await admin(`/api/v1/integrations/${oktaId}/sync`, { method: 'POST', body: '{}' });
    expect(synced.status).toBe(202);
    await admin(`/api/v1/integrations/${apiId}/rotate-webhook-secret`, { method: 'POST', issues: 'API-rotated webhook secret' });
    await admin(`/api/v1/integrations/${apiId}?confirm=${apiId}`, { method: 'DELETE' });
    expect((await dirsync(['integration', 'delete', apiId])).code).toBe(1);
  }, 180_000);

  it('logs nothing secret at debug level in the CLI, the server or the worker', async () => {
    // Commands that fail log a stack at debug level: one per kind of failure.
    await Promise.all([
      dirsync(['sync', oktaId], { REDIS_URL: 'redis://127.0.0.1:1' }),
      dirsync(['tenant', 'list'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' }),
      dirsync(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2], { DIRSYNC_ENCRYPTION_KEY: 'not-a-key' }),
      dirsync(['integration', 'update', oktaId, '--token', OKTA_TOKEN_2, '--threshold', '500']),
      dirsync(['frobnicate', '--token', OKTA_TOKEN_2]),
    ]);
    // Let the queued runs finish, then stop the server so its shutdown is logged too. Waited
    // for in Postgres (a CLI call a poll costs a process start); their lists are then looked at once.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const [{ n }] = (await cli.query<{ n: string }>(`select count(*) as n from runs where integration_id = any($1) and status in ('queued', 'running')`, [[oktaId, akId]])) as [{ n: string }];
      if (n === '0') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all([json<RunSummaryJson[]>(['runs', oktaId]), json<RunSummaryJson[]>(['runs', akId])]);
    await stopServer();
    const serverLog = server?.log ?? '';
    expect(serverLog).toContain('run succeeded');
    expect(serverLog).toContain('worker started');
    expect(serverLog).toContain('stopped');
    seen.push({ label: 'dirsync start: stdout and stderr (logs)', text: serverLog });
  }, 180_000);

  it('shows a webhook secret only where it is issued, and nothing else anywhere', async () => {
    const problems: string[] = [];
    for (const s of seen) {
      let text = s.text;
      if (s.issues) {
        const secret = secrets.get(s.issues)!;
        const times = occurrences(s.issuedIn!, secret);
        if (times !== 1) problems.push(`${s.label}: the ${s.issues} appears ${times} times where it is issued, not once`);
        text = text.split(secret).join('<issued>');
      }
      for (const name of leaks(text)) problems.push(`${s.label}: shows the ${name}`);
    }
    expect(problems).toEqual([]);
    expect(issuedCount).toBe(9);
    expect(seen.length).toBeGreaterThan(120);
  });

  it('stores no secret in any row of any table', async () => {
    const client = new pg.Client({ connectionString: cli.dbUrl });
    await client.connect();
    const problems: string[] = [];
    let rows = 0;
    let dump = '';
    try {
      const { rows: tables } = await client.query<{ name: string }>(
        `select table_name as name from information_schema.tables where table_schema = 'public' order by 1`,
      );
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['integrations', 'runs', 'run_changes', 'webhook_deliveries', 'accounts']));
      for (const { name } of tables) {
        const result = await client.query<{ row: string }>(`select t::text as row from "${name}" t`);
        for (const { row } of result.rows) {
          rows += 1;
          dump += `${row}\n`;
          for (const leak of leaks(row)) problems.push(`table ${name}: a row holds the ${leak}`);
        }
      }
    } finally {
      await client.end();
    }
    expect(problems).toEqual([]);
    // The dump did see what protects the secrets: sealed credentials and the current secrets' hashes.
    expect(dump).toContain(createHash('sha256').update(secrets.get('rotated Okta webhook secret')!).digest('hex'));
    expect(dump).toMatch(/\\x01[0-9a-f]{60,}/);
    expect(rows).toBeGreaterThan(20);
  });

  it('puts no secret in the queue', async () => {
    const redis = new Redis('redis://127.0.0.1:6379');
    const problems: string[] = [];
    try {
      const keys = (await redis.keys(`bull:${cli.queue}:*`)).sort();
      expect(keys.length).toBeGreaterThan(3);
      for (const key of keys) {
        const type = await redis.type(key);
        const value =
          type === 'string'
            ? await redis.get(key)
            : type === 'hash'
              ? JSON.stringify(await redis.hgetall(key))
              : type === 'list'
                ? JSON.stringify(await redis.lrange(key, 0, -1))
                : type === 'set'
                  ? JSON.stringify(await redis.smembers(key))
                  : type === 'zset'
                    ? JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES'))
                    : type === 'stream'
                      ? JSON.stringify(await redis.xrange(key, '-', '+'))
                      : '';
        for (const leak of leaks(`${key}\n${value}`)) problems.push(`redis ${key}: holds the ${leak}`);
      }
      await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    expect(problems).toEqual([]);

    const client = new pg.Client({ connectionString: cli.dbUrl });
    await client.connect();
    const runs = Number((await client.query<{ n: string }>('select count(*) as n from runs')).rows[0]!.n);
    await client.end();
    recordFigures({
      scenario: 'secrets: never printed, logged, answered or stored',
      rounds: 1,
      // Every place looked at, times every secret looked for.
      faults: (seen.length + 2) * secrets.size,
      runs,
      changesLost: 0,
      wrongfulDeprovisions: 0,
      note: `${secrets.size} secrets (${issuedCount} webhook secrets issued) in ${seen.length} outputs and answers, the server log, every table and the queue`,
    });
  });
});
