import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CliHarness, type CliResult } from '../support/cli.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { serviceAppKey } from '../support/okta-oauth.js';
import { DirsyncProcess } from '../support/processes.js';

// The built CLI in child processes: IdP tokens given without showing in `ps` (a file, stdin,
// DIRSYNC_IDP_TOKEN), credentials that never follow a new base URL, and HOST.
const cli = new CliHarness();
const dir = mkdtempSync(path.join(tmpdir(), 'dirsync-creds-'));

beforeAll(async () => {
  await cli.createDatabase();
}, 60_000);
afterAll(async () => {
  await cli.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The CLI with `input` on its stdin (then closed). */
function runWithInput(args: string[], input: string, env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli.bin, ...args], { env: cli.env(env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

function file(text: string): string {
  const p = path.join(dir, `f-${randomBytes(4).toString('hex')}`);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

async function okta(): Promise<FakeOkta> {
  const org = await new FakeOkta().start();
  onTestFinished(() => org.stop());
  org.token = `okta-${randomBytes(10).toString('hex')}`;
  return org;
}

/** A tenant of the test's own, made in this process (`dirsync tenant create` is tested elsewhere; a process costs seconds on a busy machine). */
async function tenant(): Promise<string> {
  const slug = `creds-${randomBytes(3).toString('hex')}`;
  await cli.createTenant(slug);
  return slug;
}

/** One line on stderr, nothing on stdout, a non-zero exit. */
function expectRefused(result: CliResult, message: RegExp): void {
  expect(result.code, result.stderr).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr.trim()).toMatch(message);
}

describe('IdP tokens kept out of ps', () => {
  it('takes the token from a file, stdin or DIRSYNC_IDP_TOKEN, without the trailing newline', async () => {
    const org = await okta();
    const slug = await tenant();
    const create = ['integration', 'create', '--tenant', slug, '--provider', 'okta', '--base-url', org.url, '--json'];
    // The fake org accepts only the exact token: a kept newline would fail the check.
    const [fromFile, fromStdin, fromEnv] = await Promise.all([
      cli.run([...create, '--token-file', file(`${org.token}\n`)]),
      runWithInput([...create, '--token', '-'], `${org.token}\r\n`),
      cli.run(create, { DIRSYNC_IDP_TOKEN: org.token }),
    ]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    for (const r of [fromFile, fromStdin, fromEnv]) expect(JSON.parse(r.stdout)).toMatchObject({ auth: 'token', check: { ok: true } });

    // update: the org's token is replaced, and the new one comes from a file.
    const id = JSON.parse(fromFile.stdout).id as string;
    org.token = `okta-${randomBytes(10).toString('hex')}`;
    expect((await cli.run(['integration', 'test', id])).code).not.toBe(0);
    const updated = await cli.run(['integration', 'update', id, '--token-file', file(`${org.token}\n`)]);
    expect(updated.code, updated.stderr).toBe(0);
    expect((await cli.run(['integration', 'test', id])).code).toBe(0);
    const viaStdin = await runWithInput(['integration', 'update', id, '--token', '-'], org.token);
    expect(viaStdin.code, viaStdin.stderr).toBe(0);

    // A scim integration has no token: DIRSYNC_IDP_TOKEN set in the shell is no reason to refuse it.
    const scim = await cli.run(['integration', 'create', '--tenant', slug, '--provider', 'scim'], { DIRSYNC_IDP_TOKEN: org.token });
    expect(scim.code, scim.stderr).toBe(0);
  }, 120_000);

  it('refuses an empty token, a missing file and a token given two ways, in one sentence', async () => {
    const org = await okta();
    const slug = await tenant();
    const create = ['integration', 'create', '--tenant', slug, '--provider', 'okta', '--base-url', org.url];
    const refusals: Array<[Promise<CliResult>, RegExp]> = [
      [runWithInput([...create, '--token', '-'], '\n'), /^dirsync: the token read from stdin \(--token -\) is empty: it must hold the IdP's API token\.$/],
      [runWithInput([...create, '--token', '-', '--token-file', file(org.token)], org.token), /^dirsync: the IdP token is given 2 ways \(--token -, --token-file\): give it only once\.$/],
      [cli.run([...create, '--token-file', path.join(dir, 'missing')]), /^dirsync: cannot read --token-file .*missing: no such file\.$/],
      [cli.run([...create, '--token-file', file('\n')]), /^dirsync: --token-file .* is empty: it must hold the IdP's API token\.$/],
      [cli.run(create, { DIRSYNC_IDP_TOKEN: '' }), /^dirsync: DIRSYNC_IDP_TOKEN is empty/],
      [cli.run([...create, '--token', org.token], { DIRSYNC_IDP_TOKEN: org.token }), /^dirsync: the IdP token is given 2 ways \(--token, DIRSYNC_IDP_TOKEN\): give it only once\.$/],
    ];
    const results = await Promise.all(refusals.map(([result]) => result));
    refusals.forEach(([, message], i) => expectRefused(results[i]!, message));
    expect(org.requests).toEqual([]);
    expect(await cli.json<unknown[]>(['integration', 'list', '--tenant', slug])).toEqual([]);
  }, 120_000);
});

describe('integration update: stored credentials never follow a new base URL', () => {
  it('okta API token: refused without the token (with --no-verify too), nothing sent there; moved with --token-file', async () => {
    const [home, away] = [await okta(), await okta()];
    const id = (await cli.json<{ id: string }>(['integration', 'create', '--tenant', await tenant(), '--provider', 'okta', '--base-url', home.url, '--token-file', file(home.token)])).id;
    const extras = [[], ['--no-verify'], ['--every', '1h', '--no-verify']];
    for (const result of await Promise.all(extras.map((extra) => cli.run(['integration', 'update', id, '--base-url', away.url, ...extra])))) {
      expectRefused(result, new RegExp(`^dirsync: --base-url moves the integration from ${home.url} to ${away.url}, and stored credentials are never sent to a new address: give --token in the same update\\.$`));
    }
    expect(away.requests).toEqual([]);
    const moved = await cli.json<{ baseUrl: string; check: { ok: boolean } }>(['integration', 'update', id, '--base-url', away.url, '--token-file', file(away.token)]);
    expect(moved).toMatchObject({ baseUrl: away.url, check: { ok: true } });
  }, 120_000);

  it('authentik API token: refused without it, moved with it', async () => {
    const [home, away] = await Promise.all([new FakeAuthentik().start(), new FakeAuthentik().start()]);
    onTestFinished(async () => void (await Promise.all([home.stop(), away.stop()])));
    away.token = 'ak-away-0123456789';
    const id = (await cli.json<{ id: string }>(['integration', 'create', '--tenant', await tenant(), '--provider', 'authentik', '--base-url', home.url], { DIRSYNC_IDP_TOKEN: home.token })).id;
    expectRefused(await cli.run(['integration', 'update', id, '--base-url', away.url, '--no-verify']), /give --token in the same update\.$/);
    expect(away.requests).toEqual([]);
    const moved = await cli.json<{ baseUrl: string }>(['integration', 'update', id, '--base-url', away.url], { DIRSYNC_IDP_TOKEN: away.token });
    expect(moved).toMatchObject({ baseUrl: away.url });
  }, 120_000);

  it('okta service app: refused without client id and key, moved with both', async () => {
    const key = serviceAppKey('rsa');
    const keyFile = file(key.privatePem);
    const [home, away] = [await okta(), await okta()];
    for (const org of [home, away]) {
      org.serviceApp = { clientId: '0oaCliSvc', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set(['okta.users.read', 'okta.groups.read', 'okta.apps.read']), dpop: false };
    }
    const app = ['--okta-client-id', '0oaCliSvc', '--okta-private-key-file', keyFile, '--okta-key-id', 'k1'];
    const id = (await cli.json<{ id: string }>(['integration', 'create', '--tenant', await tenant(), '--provider', 'okta', '--base-url', home.url, ...app])).id;
    const needed = /give --okta-client-id with --okta-private-key-file \(or --token\) in the same update\.$/;
    const refused = await Promise.all([
      cli.run(['integration', 'update', id, '--base-url', away.url]),
      cli.run(['integration', 'update', id, '--base-url', away.url, '--okta-private-key-file', keyFile, '--no-verify']),
    ]);
    for (const result of refused) expectRefused(result, needed);
    expect(away.requests).toEqual([]);
    expect(away.tokenRequests).toEqual([]);
    const moved = await cli.json<{ baseUrl: string; auth: string }>(['integration', 'update', id, '--base-url', away.url, ...app]);
    expect(moved).toMatchObject({ baseUrl: away.url, auth: 'okta-private-key' });
    expect(away.tokenRequests.length).toBeGreaterThan(0);
  }, 120_000);
});

describe('HOST', () => {
  it('listens on 127.0.0.1 by default and on the address HOST names', async () => {
    const reaches = async (host: string, port: number) => {
      try {
        return (await fetch(`http://${host}:${port}/healthz`)).status > 0;
      } catch {
        return false;
      }
    };
    const byDefault = await new DirsyncProcess(cli, 'start').start();
    try {
      expect(await reaches('127.0.0.1', cli.port)).toBe(true);
      expect(await reaches('127.0.0.2', cli.port)).toBe(false);
    } finally {
      await byDefault.stop();
    }
    const named = await new DirsyncProcess(cli, 'start', { HOST: '127.0.0.2' }).start();
    try {
      expect(await reaches('127.0.0.2', cli.port)).toBe(true);
      expect(await reaches('127.0.0.1', cli.port)).toBe(false);
    } finally {
      await named.stop();
    }
  }, 120_000);
});
