import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';

/**
 * `dirsync demo` as a newcomer runs it (SPEC; issue 16): one command, against the configured
 * Postgres and Redis, with no encryption key or admin token set. It syncs the demo company,
 * keeps the server and worker running, changes the company every tick (telling dirsync by
 * Okta event hooks), holds the early mass removal, stops cleanly on Ctrl-C, and a second demo
 * resets the demo tenant rather than duplicating it.
 */

const cli = new CliHarness();
const workdir = mkdtempSync(path.join(tmpdir(), 'dirsync-demo-'));
afterAll(async () => {
  await cli.stop();
  rmSync(workdir, { recursive: true, force: true });
});

/** A running `dirsync demo`, its output collected. */
function startDemo(args: string[]): { child: ChildProcess; output: () => string; waitFor: (pattern: RegExp, ms?: number) => Promise<RegExpMatchArray> } {
  // What a newcomer has: Postgres and Redis, nothing else set.
  const env = cli.env();
  delete env.DIRSYNC_ENCRYPTION_KEY;
  delete env.DIRSYNC_ALLOW_HTTP;
  delete env.DIRSYNC_ALLOW_PRIVATE_NETWORK;
  // In a directory of its own: the demo saves the key it makes to ./.env.
  const child = spawn(process.execPath, [cli.bin, 'demo', ...args], { env, cwd: workdir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const waitFor = (pattern: RegExp, ms = 60_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const deadline = Date.now() + ms;
      const look = () => {
        const m = out.match(pattern);
        if (m) return resolve(m);
        if (child.exitCode !== null) return reject(new Error(`dirsync demo exited (${child.exitCode}) before ${pattern}:\n${out}`));
        if (Date.now() > deadline) return reject(new Error(`no ${pattern} within ${ms} ms:\n${out}`));
        setTimeout(look, 100);
      };
      look();
    });
  return { child, output: () => out, waitFor };
}

async function stopDemo(child: ChildProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  const code = await exited;
  return { code, ms: Date.now() - started };
}

async function api<T>(token: string, path: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${cli.port}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}

interface Page<T> {
  items: T[];
}

let endpointId = '';

/** People (persons) no account links to: a reset must not add to them. */
async function orphanPeople(): Promise<number> {
  const client = new pg.Client({ connectionString: cli.env().DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('select count(*) as n from users u where not exists (select 1 from accounts a where a.user_id = u.id)');
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

describe('dirsync demo', () => {
  it('syncs the demo company, changes it through event hooks, holds the mass removal, stops on Ctrl-C, and resets on a second start', async () => {
    const first = startDemo(['--tick', '2', '--people', '60']);
    try {
      const token = (await first.waitFor(/this session's admin token is (\S+)/))[1]!;
      expect(first.output()).toMatch(/made one for stored credentials and saved it to \.env/);
      // Its IdP is on 127.0.0.1: allowed for the demo's own process only.
      expect(first.output()).toMatch(/DIRSYNC_ALLOW_PRIVATE_NETWORK=true for this process/);
      expect(readFileSync(path.join(workdir, '.env'), 'utf8')).toMatch(/^DIRSYNC_ENCRYPTION_KEY=[A-Za-z0-9+/]{43}=\n$/);
      await first.waitFor(/first sync: succeeded: \d+ users created, \d+ groups created, \d+ memberships added/);
      await first.waitFor(new RegExp(`console: http://127\\.0\\.0\\.1:${cli.port}/admin`));

      const integrations = await api<Page<{ id: string; tenant: string; provider: string }>>(token, '/api/v1/integrations');
      expect(integrations.items.filter((i) => i.tenant === 'demo')).toHaveLength(1);
      const id = integrations.items[0]!.id;
      // The mass removal of the second round is held for approval; event hooks trigger runs.
      await first.waitFor(/idp: Sales unassigned from the app by mistake/, 30_000);
      const held = async () => (await api<Page<{ status: string; trigger: string }>>(token, `/api/v1/integrations/${id}/runs?limit=50`)).items;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
        if ((await held()).some((r) => r.status === 'held')) break;
      }
      const runs = await held();
      expect(runs.some((r) => r.status === 'held'), JSON.stringify(runs)).toBe(true);
      expect(runs.some((r) => r.trigger === 'webhook'), JSON.stringify(runs)).toBe(true);
      const users = await api<Page<{ userName: string }>>(token, '/api/v1/tenants/demo/users?limit=1000');
      expect(users.items.length).toBeGreaterThanOrEqual(55);
      // An endpoint of the demo tenant (a loopback port nothing answers: deliveries just fail): the reset keeps it.
      const created = await fetch(`http://127.0.0.1:${cli.port}/api/v1/endpoints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'http://127.0.0.1:9/hooks', tenant: 'demo' }),
      });
      expect(created.status).toBe(201);
      endpointId = ((await created.json()) as { id: string }).id;
    } finally {
      const stopped = await stopDemo(first.child);
      expect(stopped.code, first.output()).toBe(0);
      expect(first.output()).toMatch(/stopping the demo[^\n]*\n(.*\n)*demo stopped;/);
      expect(stopped.ms).toBeLessThan(10_000);
    }

    // A rename leaves the old login's person without an account (SPEC "Identity"): those were there before the reset too.
    const orphansBefore = await orphanPeople();
    const second = startDemo(['--tick', '600', '--people', '60']);
    try {
      const token = (await second.waitFor(/this session's admin token is (\S+)/))[1]!;
      await second.waitFor(/reset tenant "demo" \(its event endpoint is kept\)/);
      // The key saved by the first session is read, not made again.
      expect(second.output()).not.toMatch(/DIRSYNC_ENCRYPTION_KEY/);
      await second.waitFor(/first sync: succeeded: \d+ users created/);
      const integrations = await api<Page<{ tenant: string }>>(token, '/api/v1/integrations');
      expect(integrations.items.filter((i) => i.tenant === 'demo')).toHaveLength(1);
      const users = await api<Page<{ userName: string }>>(token, '/api/v1/tenants/demo/users?limit=1000');
      // The same company as the first start, once: no one twice, no one left from the first session.
      expect(new Set(users.items.map((u) => u.userName)).size).toBe(users.items.length);
      expect(users.items.length).toBeLessThanOrEqual(60);
      expect(await orphanPeople()).toBe(orphansBefore);
      const endpoints = await api<Page<{ id: string; tenant: string }>>(token, '/api/v1/endpoints');
      expect(endpoints.items.filter((e) => e.tenant === 'demo').map((e) => e.id)).toEqual([endpointId]);
    } finally {
      expect((await stopDemo(second.child)).code, second.output()).toBe(0);
    }
  }, 180_000);

  it('refuses to start on a port already taken before it resets anything: the earlier session is kept', async () => {
    const integrationsBefore = await demoIntegrations();
    expect(integrationsBefore).toHaveLength(1);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(cli.port, '127.0.0.1', resolve));
    try {
      const demo = startDemo(['--tick', '600', '--people', '60']);
      const code = await new Promise<number | null>((resolve) => (demo.child.exitCode !== null ? resolve(demo.child.exitCode) : demo.child.once('exit', resolve)));
      expect(code, demo.output()).toBe(1);
      expect(demo.output()).toContain(`Port ${cli.port} is already in use`);
      expect(demo.output()).not.toMatch(/reset tenant|created tenant/);
      expect(await demoIntegrations()).toEqual(integrationsBefore);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 60_000);
});

/** The demo tenant's integrations (ids), read from Postgres. */
async function demoIntegrations(): Promise<string[]> {
  const client = new pg.Client({ connectionString: cli.env().DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>("select i.id from integrations i join tenants t on t.id = i.tenant_id where t.slug = 'demo' order by i.id");
    return rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}
