import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { serviceAppKey } from '../support/okta-oauth.js';
import { DirsyncProcess } from '../support/processes.js';

// An admin whose Okta org forbids API tokens: an OAuth service app with a private key, created,
// tested and synced with the built CLI against a fake Okta that checks every assertion, scope
// and DPoP proof as Okta does.
const cli = new CliHarness();
const ADMIN_TOKEN = 'admin-token-for-service-app-test';
const CLIENT_ID = '0oaDirsyncSvc1';
const key = serviceAppKey('rsa');
const dir = mkdtempSync(path.join(tmpdir(), 'dirsync-key-'));
const keyFile = path.join(dir, 'service-app.pem');
const ALL_SCOPES = ['okta.users.read', 'okta.groups.read', 'okta.apps.read'];

interface CheckJson {
  ok: boolean;
  auth: string;
  checks: { endpoint: string; ok: boolean; problem?: string; message?: string }[];
}

let okta: FakeOkta;
let server: DirsyncProcess | undefined;
let id: string;

beforeAll(async () => {
  writeFileSync(keyFile, key.privatePem, { mode: 0o600 });
  okta = await new FakeOkta().start();
  okta.serviceApp = { clientId: CLIENT_ID, publicKey: key.publicKey, keyId: 'kid-2026', grantedScopes: new Set(ALL_SCOPES), dpop: false };
  const app = okta.addApp('0oaSvcApp');
  const eng = okta.addGroup('Engineering', { id: '00gEng' });
  for (const login of ['ann.lee@svc.test', 'bob.king@svc.test']) {
    const user = okta.addUser(login);
    okta.addMember(eng.id, user.id);
  }
  app.groups.add(eng.id);
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'acme']);
  server = await new DirsyncProcess(cli, 'start', { DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN }).start();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await okta?.stop();
  await cli.stop();
});

const create = (...extra: string[]) =>
  cli.run([
    'integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url,
    '--okta-client-id', CLIENT_ID, '--okta-private-key-file', keyFile, '--okta-app-id', '0oaSvcApp', ...extra,
  ], { DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN });

describe('an Okta OAuth service app', () => {
  it('is created with a private key file, checked against Okta first, and never printed', async () => {
    const result = await create('--okta-key-id', 'kid-2026', '--json');
    expect(result.code, result.stderr).toBe(0);
    const created = JSON.parse(result.stdout) as Record<string, unknown> & { check: CheckJson };
    expect(created).toMatchObject({ provider: 'okta', auth: 'okta-private-key', oktaClientId: CLIENT_ID, oktaAppId: '0oaSvcApp' });
    expect(created.check.ok).toBe(true);
    id = created.id as string;
    // The token request asked for exactly the scopes an app-scoped sync needs, signed with the key.
    // (and the System Log's check its own token, with okta.logs.read alone: full runs never need it)
    expect(okta.tokenRequests.map((r) => r.scopes)).toEqual([ALL_SCOPES, ['okta.logs.read']]);
    expect(okta.tokenRequests.at(-1)!.assertion).toMatchObject({ header: { alg: 'RS256', kid: 'kid-2026' }, claims: { iss: CLIENT_ID } });

    const secretPart = JSON.parse(JSON.stringify(key.publicKey.export({ format: 'jwk' }))) as { n: string };
    const privateD = (JSON.parse(key.privateJwk) as { d: string }).d;
    for (const args of [['integration', 'show', id], ['integration', 'list'], ['integration', 'show', id, '--json']]) {
      const out = await cli.run(args);
      expect(out.stdout + out.stderr).not.toContain(privateD);
      expect(out.stdout + out.stderr).not.toContain(key.privatePem.split('\n')[1]!);
    }
    expect(secretPart.n).toBeTruthy();
  });

  it('`integration test` reports every endpoint a sync uses as ok', async () => {
    const result = await cli.run(['integration', 'test', id]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'ok POST /oauth2/v1/token',
      'ok GET /api/v1/apps/0oaSvcApp/users',
      'ok GET /api/v1/apps/0oaSvcApp/groups',
      'ok GET /api/v1/groups/{groupId}/users',
      'ok GET /api/v1/users/{userId}/groups',
      'ok GET /api/v1/apps/0oaSvcApp/users/{userId}',
      'ok GET /api/v1/users/{userId}',
      'ok GET /api/v1/logs',
    ]);
  });

  it('syncs with it', async () => {
    const run = await cli.json<RunSummaryJson>(['sync', id, '--wait']);
    expect(run).toMatchObject({ status: 'succeeded', counts: { usersCreated: 2, groupsCreated: 1, membershipsAdded: 2 } });
  });

  it('names the scope the service app lost, in the CLI and the admin API', async () => {
    okta.serviceApp!.grantedScopes.delete('okta.apps.read');
    try {
      const result = await cli.run(['integration', 'test', id]);
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/FAILED +POST \/oauth2\/v1\/token +the service app is not granted the scope okta\.apps\.read: grant it in the Okta Admin Console/);
      expect(result.stdout).toMatch(/skipped +GET \/api\/v1\/apps\/0oaSvcApp\/users +not checked: POST \/oauth2\/v1\/token failed/);
      expect(result.stderr.trim()).toBe('dirsync: 1 of 8 endpoints failed the check.');

      const response = await fetch(`http://127.0.0.1:${cli.port}/api/v1/integrations/${id}/test`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(response.status).toBe(200);
      const report = (await response.json()) as CheckJson;
      expect(report.ok).toBe(false);
      expect(report.checks[0]).toMatchObject({ endpoint: 'POST /oauth2/v1/token', ok: false, problem: 'missing-scope' });
      expect(report.checks[0]!.message).toContain('okta.apps.read');

      // A sync fails with the same advice, and changes nothing.
      const failed = await cli.run(['sync', id, '--wait', '--json']);
      expect(failed.code).toBe(1);
      const run = JSON.parse(failed.stdout) as RunSummaryJson;
      expect(run.status).toBe('failed');
      expect(run.counts).toEqual(ZERO_COUNTS);
      expect(run.error).toMatch(/not granted the scope okta\.apps\.read/);
    } finally {
      okta.serviceApp!.grantedScopes.add('okta.apps.read');
    }
  });

  it('works when the Okta app demands DPoP', async () => {
    okta.serviceApp!.dpop = true;
    try {
      const result = await cli.run(['integration', 'test', id, '--json']);
      expect(result.code, result.stdout).toBe(0);
      expect(okta.tokenRequests.at(-1)!.dpop).toBe(true);
      const run = await cli.json<RunSummaryJson>(['sync', id, '--wait']);
      expect(run.status).toBe('succeeded');
    } finally {
      okta.serviceApp!.dpop = false;
    }
  });

  it('refuses a key Okta does not know, storing nothing, unless --no-verify', async () => {
    const before = (await cli.json<unknown[]>(['integration', 'list'])).length;
    const stranger = path.join(dir, 'stranger.pem');
    writeFileSync(stranger, serviceAppKey('rsa').privatePem);
    const refused = await cli.run([
      'integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url,
      '--okta-client-id', CLIENT_ID, '--okta-private-key-file', stranger,
    ]);
    expect(refused.code).toBe(1);
    const stderr = refused.stderr.trim().split('\n');
    expect(stderr[0]).toMatch(/^FAILED +POST \/oauth2\/v1\/token +Okta rejected the service app's credentials \(Okta: "The client_assertion signature is invalid\."\)/);
    expect(stderr.at(-1)).toBe('dirsync: the IdP check failed at 1 endpoint, so nothing was stored: fix the settings, or store them unchecked (--no-verify; "verify": false in the API).');
    expect((await cli.json<unknown[]>(['integration', 'list'])).length).toBe(before);

    const unchecked = await cli.run([
      'integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url,
      '--okta-client-id', CLIENT_ID, '--okta-private-key-file', stranger, '--no-verify',
    ]);
    expect(unchecked.code, unchecked.stderr).toBe(0);
    expect(unchecked.stdout).toContain('not checked against the IdP (--no-verify)');
    expect((await cli.json<unknown[]>(['integration', 'list'])).length).toBe(before + 1);
  });

  it('takes a new key with `integration update`, checked before it replaces the old one', async () => {
    const next = serviceAppKey('rsa');
    const nextFile = path.join(dir, 'next.json');
    writeFileSync(nextFile, JSON.stringify({ ...JSON.parse(next.privateJwk), kid: 'kid-2027' }));
    // Not registered in Okta yet: refused, and the old key keeps working.
    const early = await cli.run(['integration', 'update', id, '--okta-private-key-file', nextFile]);
    expect(early.code).toBe(1);
    expect((await cli.run(['integration', 'test', id])).code).toBe(0);
    // Registered (with its kid, given inside the JWK): accepted.
    okta.serviceApp = { ...okta.serviceApp!, publicKey: next.publicKey, keyId: 'kid-2027' };
    const updated = await cli.run(['integration', 'update', id, '--okta-private-key-file', nextFile]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/checked 8 IdP endpoints: all ok/);
    expect(okta.tokenRequests.at(-1)!.assertion).toMatchObject({ header: { kid: 'kid-2027' } });
  });

  it('answers bad service-app options with one sentence', async () => {
    const pub = path.join(dir, 'public.pem');
    writeFileSync(pub, key.publicKey.export({ format: 'pem', type: 'spki' }));
    const base = ['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url];
    const cases: [string[], RegExp][] = [
      [[...base, '--okta-client-id', CLIENT_ID, '--okta-private-key-file', path.join(dir, 'missing.pem')], /^dirsync: cannot read --okta-private-key-file .*missing\.pem: no such file\.$/],
      [[...base, '--okta-client-id', CLIENT_ID, '--okta-private-key-file', pub], /^dirsync: --okta-private-key-file holds a public key or certificate: give the private key\.$/],
      [[...base, '--okta-client-id', CLIENT_ID], /^dirsync: an Okta service app needs both --okta-client-id and --okta-private-key-file\.$/],
      [[...base, '--okta-client-id', CLIENT_ID, '--okta-private-key-file', keyFile, '--token', 'x'], /^dirsync: give either --token or an Okta service app/],
      [[...base], /^dirsync: --token or --okta-client-id with --okta-private-key-file is required/],
      [['integration', 'create', '--tenant', 'acme', '--provider', 'authentik', '--base-url', okta.url, '--okta-client-id', CLIENT_ID, '--okta-private-key-file', keyFile], /apply only to okta integrations/],
    ];
    for (const [args, pattern] of cases) {
      const result = await cli.run(args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr.trim(), args.join(' ')).toMatch(pattern);
    }
  });
});
