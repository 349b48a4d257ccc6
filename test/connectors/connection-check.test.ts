import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectionTarget, checkConnection, describeReport } from '../../src/integrations/connection-check.js';
import type { Credentials } from '../../src/integrations/credentials.js';
import { parseOktaPrivateKey } from '../../src/integrations/okta-private-key.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { serviceAppKey } from '../support/okta-oauth.js';
import { loopbackEgress } from '../support/egress.js';

// `integration test` against fake IdPs speaking the real wire format: every problem an admin
// can meet is reported at the endpoint where it happens, in words that say what to fix.
let okta: FakeOkta;
let authentik: FakeAuthentik;
let tls: Server;
let tlsUrl: string;

const oktaTarget = (over: Partial<ConnectionTarget> = {}): ConnectionTarget => ({
  id: '00000000-0000-4000-8000-000000000001',
  provider: 'okta',
  baseUrl: okta.url,
  oktaAppId: '0oaCheck',
  authentikApp: null,
  ...over,
});
const akTarget = (over: Partial<ConnectionTarget> = {}): ConnectionTarget => ({
  id: '00000000-0000-4000-8000-000000000002',
  provider: 'authentik',
  baseUrl: authentik.url,
  oktaAppId: null,
  authentikApp: 'crm',
  ...over,
});
const token = (t: string): Credentials => ({ kind: 'token', token: t });

beforeAll(async () => {
  okta = await new FakeOkta().start();
  const app = okta.addApp('0oaCheck');
  const ann = okta.addUser('ann@check.test');
  const eng = okta.addGroup('Engineering');
  okta.addMember(eng.id, ann.id);
  app.groups.add(eng.id);
  authentik = await new FakeAuthentik().start();
  authentik.addUser('ann@check.test');
  authentik.addApp('crm');

  // An https server with a self-signed certificate: what a TLS-intercepting proxy looks like.
  const dir = mkdtempSync(path.join(tmpdir(), 'dirsync-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' });
  tls = createServer({ key: readFileSync(`${dir}/key.pem`), cert: readFileSync(`${dir}/cert.pem`) }, (_req, res) => res.end('{}'));
  await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
  tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
});

// A test's injected fault ends with it.
afterEach(() => {
  okta.fault = undefined;
  authentik.fault = undefined;
});

afterAll(async () => {
  await okta?.stop();
  await authentik?.stop();
  tls?.closeAllConnections();
  await new Promise((resolve) => tls?.close(resolve));
});

describe('integration test, Okta', () => {
  it('reports every endpoint ok with a valid token', async () => {
    const report = await checkConnection(oktaTarget(), token(okta.token), loopbackEgress);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.endpoint)).toEqual([
      'GET /api/v1/apps/0oaCheck/users',
      'GET /api/v1/apps/0oaCheck/groups',
      'GET /api/v1/groups/{groupId}/users',
      'GET /api/v1/users/{userId}/groups',
      'GET /api/v1/apps/0oaCheck/users/{userId}',
      'GET /api/v1/users/{userId}',
      'GET /api/v1/logs',
    ]);
    expect(report.checks.every((c) => c.ok && !c.note)).toBe(true);
  });

  it('says in a note, not a failure, when the System Log cannot be read: scheduled runs read the whole scope then', async () => {
    okta.fault = ({ path: p }) => (p === '/api/v1/logs' ? { status: 403, body: { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action' } } : undefined);
    const report = await checkConnection(oktaTarget(), token(okta.token), loopbackEgress);
    expect(report.ok).toBe(true);
    expect(report.checks.at(-1)).toEqual({
      endpoint: 'GET /api/v1/logs',
      ok: true,
      note: expect.stringMatching(/^cannot be read, so every scheduled run reads the whole scope instead of the changes: the API token's admin may not read Okta's System Log \(HTTP 403 E0000006/),
    });
  });

  it('checks the org-wide listings when not scoped to an app', async () => {
    const report = await checkConnection(oktaTarget({ oktaAppId: null }), token(okta.token), loopbackEgress);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.endpoint)).toEqual([
      'GET /api/v1/users',
      'GET /api/v1/users?filter=status eq "DEPROVISIONED"',
      'GET /api/v1/groups',
      'GET /api/v1/groups/{groupId}/users',
      'GET /api/v1/users/{userId}/groups',
      'GET /api/v1/users/{userId}',
      'GET /api/v1/logs',
    ]);
  });

  it('says the token is invalid or expired (401), and tries nothing more', async () => {
    const report = await checkConnection(oktaTarget(), token('expired-token'), loopbackEgress);
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ ok: false, problem: 'unauthorized', message: expect.stringMatching(/^Okta rejected the API token: it is invalid, expired or revoked/) });
    expect(report.checks.slice(1).every((c) => !c.ok && c.problem === 'not-checked')).toBe(true);
  });

  it('names an Okta app id that does not exist (404)', async () => {
    const report = await checkConnection(oktaTarget({ oktaAppId: '0oaTypo' }), token(okta.token), loopbackEgress);
    expect(report.checks[0]).toMatchObject({ problem: 'not-found', message: "Okta has no app with id 0oaTypo: check --okta-app-id (the 0oa… id in the app's Admin Console address)" });
  });

  it('says when the token may not read (403)', async () => {
    okta.fault = ({ path: p }) => (p === '/api/v1/apps/0oaCheck/groups' ? { status: 403, body: { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action' } } : undefined);
    const report = await checkConnection(oktaTarget(), token(okta.token), loopbackEgress);
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed.map((c) => [c.endpoint, !c.ok && c.problem])).toEqual([['GET /api/v1/apps/0oaCheck/groups', 'forbidden']]);
  });

  it('reports a rate limit at once instead of waiting it out', async () => {
    okta.fault = () => ({ status: 429, body: { errorCode: 'E0000047', errorSummary: 'API call exceeded rate limit due to too many requests.' }, headers: { 'x-rate-limit-reset': String(Math.floor(Date.now() / 1000) + 60) } });
    const started = Date.now();
    const report = await checkConnection(oktaTarget(), token(okta.token), loopbackEgress);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(report.checks[0]).toMatchObject({ problem: 'rate-limited', message: expect.stringMatching(/^Okta is rate-limiting these requests \(429\)/) });
  });

  it('says a URL is wrong: nothing listening, a host that does not resolve, or not an Okta API', async () => {
    const refused = await checkConnection(oktaTarget({ baseUrl: 'http://127.0.0.1:1' }), token('t'), loopbackEgress);
    expect(refused.checks[0]).toMatchObject({ problem: 'wrong-url', message: 'nothing answers at http://127.0.0.1:1 (connection refused): check --base-url' });
    const unknown = await checkConnection(oktaTarget({ baseUrl: 'https://acme.okta.invalid' }), token('t'), loopbackEgress);
    expect(unknown.checks[0]).toMatchObject({ problem: 'wrong-url', message: 'the host acme.okta.invalid does not resolve: check --base-url' });
    const other = await checkConnection(oktaTarget({ baseUrl: authentik.url }), token('t'), loopbackEgress);
    expect(other.checks[0]).toMatchObject({ problem: 'wrong-url', message: `${authentik.url} answered 403 without an Okta error code, so it is not Okta's API: check --base-url is the Okta org URL` });
  });

  it('never quotes back a token the IdP echoes', async () => {
    okta.fault = () => ({ status: 400, body: { errorCode: 'E0000001', errorSummary: `Api validation failed: Authorization: SSWS ${okta.token}` } });
    const report = await checkConnection(oktaTarget(), token(okta.token), loopbackEgress);
    expect(report.checks[0]!.ok).toBe(false);
    expect(JSON.stringify(report)).not.toContain(okta.token);
    expect(JSON.stringify(report)).toContain('SSWS [redacted]');
  });

  it('says a service app points at something that is not Okta (an HTML 404 at the token endpoint)', async () => {
    const site = createHttpServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<!DOCTYPE html><html><body>Not found</body></html>');
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
      const { jwk } = parseOktaPrivateKey(serviceAppKey('rsa').privatePem, undefined);
      const report = await checkConnection(oktaTarget({ baseUrl: url }), { kind: 'okta-private-key', clientId: '0oaX', privateKey: jwk, keyId: null }, loopbackEgress);
      expect(report.checks[0]).toMatchObject({ endpoint: 'POST /oauth2/v1/token', problem: 'wrong-url', message: `${url} has no Okta token endpoint: check --base-url is the Okta org URL` });
    } finally {
      await new Promise((resolve) => site.close(resolve));
    }
  });

  it('names a TLS failure', async () => {
    const report = await checkConnection(oktaTarget({ baseUrl: tlsUrl }), token('t'), loopbackEgress);
    expect(report.checks[0]).toMatchObject({ problem: 'tls', message: expect.stringMatching(/^TLS failure talking to 127\.0\.0\.1:\d+: its certificate is self-signed \(DEPTH_ZERO_SELF_SIGNED_CERT\)/) });
    expect(describeReport(report).split('\n')[0]).toMatch(/^FAILED +GET \/api\/v1\/apps\/0oaCheck\/users +TLS failure/);
  });
});

describe('integration test, authentik', () => {
  it('reports every endpoint ok with a valid token', async () => {
    const report = await checkConnection(akTarget(), token(authentik.token), loopbackEgress);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.endpoint)).toEqual([
      'GET /api/v3/core/applications/crm/',
      'GET /api/v3/policies/bindings/',
      'GET /api/v3/core/users/',
      'GET /api/v3/core/groups/',
      'GET /api/v3/events/events/',
    ]);
  });

  it('says in a note, not a failure, when model events cannot be read or none are visible', async () => {
    for (const [access, note] of [
      ['forbidden', /^cannot be read \(HTTP 403\), so incremental runs see only user changes/],
      ['hidden', /^no events visible \(the token's user may lack the permission to view events\), so incremental runs/],
    ] as const) {
      authentik.eventsAccess = access;
      try {
        const report = await checkConnection(akTarget(), token(authentik.token), loopbackEgress);
        expect(report.ok).toBe(true);
        expect(report.checks.at(-1)).toEqual({ endpoint: 'GET /api/v3/events/events/', ok: true, note: expect.stringMatching(note) });
      } finally {
        authentik.eventsAccess = 'ok';
      }
    }
  });

  it('says the token is invalid or expired (authentik answers 403)', async () => {
    const report = await checkConnection(akTarget(), token('revoked'), loopbackEgress);
    expect(report.checks[0]).toMatchObject({ problem: 'unauthorized', message: expect.stringMatching(/^authentik rejected the API token: it is invalid or expired \(authentik: "Token invalid\/expired"\)/) });
  });

  it('names an application slug that does not exist (404)', async () => {
    const report = await checkConnection(akTarget({ authentikApp: 'crn' }), token(authentik.token), loopbackEgress);
    expect(report.checks[0]).toMatchObject({ problem: 'not-found', message: 'authentik has no application with slug "crn": check --authentik-app (the slug in the application\'s address)' });
    expect(report.checks.slice(1).every((c) => !c.ok && c.problem === 'not-checked')).toBe(true);
  });

  it("says when the token's user may not view bindings (403)", async () => {
    authentik.fault = ({ path: p }) => (p.startsWith('/api/v3/policies/') ? { status: 403, body: { detail: 'You do not have permission to perform this action.' } } : undefined);
    const report = await checkConnection(akTarget(), token(authentik.token), loopbackEgress);
    expect(report.checks[1]).toMatchObject({ endpoint: 'GET /api/v3/policies/bindings/', problem: 'forbidden' });
    expect(report.checks[2]!.ok).toBe(true);
  });

  it('never quotes back a token authentik echoes in its detail', async () => {
    authentik.fault = () => ({ status: 403, body: { detail: `Token invalid/expired: Bearer ${authentik.token}` } });
    const report = await checkConnection(akTarget(), token(authentik.token), loopbackEgress);
    expect(report.checks[0]).toMatchObject({ problem: 'unauthorized' });
    expect(JSON.stringify(report)).not.toContain(authentik.token);
  });

  it('says when the base URL has no authentik API', async () => {
    const report = await checkConnection(akTarget({ baseUrl: okta.url, authentikApp: null }), token('t'), loopbackEgress);
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ problem: 'wrong-url' });
  });
});
