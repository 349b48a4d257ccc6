import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { waitFor } from '../support/wait.js';
import { oktaDelivery } from '../support/webhook-bodies.js';

// The CLI exactly as automation calls it: the built bin in a child process, against real
// Postgres and Redis and a fake Okta on loopback. Every test sets up its own tenant, Okta org
// and integration (`acme()`), so each one passes on its own (`it.only`) and in any order; the
// database is migrated once, and `dirsync start` is started by the first test that needs it.
const cli = new CliHarness();
const PORT = cli.port;
const dbUrl = cli.dbUrl;
const dirsync = (args: string[], extra: Record<string, string> = {}) => cli.run(args, extra);
const json = <T = unknown>(args: string[]) => cli.json<T>(args);
type Summary = RunSummaryJson;
const zero = ZERO_COUNTS;
/** Every Okta token the tests handed the CLI: none may ever appear in the server's log. */
const tokens: string[] = [];

let serverStarted: Promise<void> | undefined;
/** `dirsync start` (server and worker), once for the file. */
const server = () => (serverStarted ??= cli.start());

beforeAll(async () => {
  expect((await dirsync(['migrate'])).code).toBe(0);
}, 60_000);

afterAll(async () => {
  await cli.stop();
});

interface Acme {
  okta: FakeOkta;
  token: string;
  tenant: string;
  integrationId: string;
}

/** A fake Okta org of its own with a token of its own, stopped when the test ends. */
async function oktaOrg(): Promise<{ okta: FakeOkta; token: string }> {
  const okta = await new FakeOkta().start();
  onTestFinished(() => okta.stop());
  const token = `okta-token-${randomBytes(8).toString('hex')}`;
  okta.token = token;
  tokens.push(token);
  return { okta, token };
}

/**
 * The scenario's starting point, for one test: an Okta org with ann (directly assigned, in
 * Engineering) and bob (in Ops), both groups assigned to the app, and a tenant of its own with
 * an Okta integration for that app. `synced` runs the first sync, through the CLI.
 */
async function acme(options: { synced?: boolean } = {}): Promise<Acme> {
  const { okta, token } = await oktaOrg();
  const app = okta.addApp('0oaE2E');
  const ann = okta.addUser('ann.lee@e2e.test', { id: '00uAnn', profile: { department: 'R&D' } });
  const bob = okta.addUser('bob.king@e2e.test', { id: '00uBob' });
  const eng = okta.addGroup('Engineering', { id: '00gEng' });
  const ops = okta.addGroup('Ops', { id: '00gOps' });
  okta.addMember(eng.id, ann.id);
  okta.addMember(ops.id, bob.id);
  app.users.add(ann.id);
  app.groups.add(eng.id);
  app.groups.add(ops.id);
  const tenant = `acme-${randomBytes(3).toString('hex')}`;
  // Made in this process by the functions the commands call: the commands themselves are
  // tested as processes above ('creates a tenant and an Okta integration ...'), and every
  // process started costs a test seconds on a busy machine.
  await cli.createTenant(tenant, 'Acme Corp');
  const created = await cli.createIntegration({ tenant, provider: 'okta', baseUrl: okta.url, token, oktaAppId: '0oaE2E' });
  if (options.synced) {
    await server();
    expect(await json<Summary>(['sync', created.id, '--wait'])).toMatchObject({ status: 'succeeded' });
  }
  return { okta, token, tenant, integrationId: created.id };
}

describe('dirsync CLI, end to end', () => {
  it('migrate creates the database and is safe to run twice', async () => {
    // A database of its own: the file's database is already migrated.
    const fresh = new CliHarness();
    try {
      const first = await fresh.run(['migrate']);
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toMatch(/created the database; applied 2026-11-25T0000-initial/);
      const second = await fresh.run(['migrate']);
      expect(second.stdout.trim()).toBe('database is up to date');
    } finally {
      await fresh.stop();
    }
  });

  it('creates a tenant and an Okta integration without ever printing the token', async () => {
    const { okta, token } = await oktaOrg();
    okta.addApp('0oaE2E');
    const tenant = `acme-${randomBytes(3).toString('hex')}`;
    expect(await json(['tenant', 'create', tenant, '--name', 'Acme Corp'])).toMatchObject({ slug: tenant, name: 'Acme Corp' });
    const created = await json<Record<string, unknown>>([
      'integration', 'create', '--tenant', tenant, '--provider', 'okta', '--base-url', okta.url,
      '--token', token, '--okta-app-id', '0oaE2E',
    ]);
    expect(created).toMatchObject({ tenant, provider: 'okta', oktaAppId: '0oaE2E', schedule: 'manual only', enabled: true });
    expect(created.webhookUrl).toBe(`http://127.0.0.1:${PORT}/webhooks/${created.id}`);
    expect(created.webhookSecret).toEqual(expect.any(String));
    const integrationId = created.id as string;
    for (const args of [['integration', 'show', integrationId], ['integration', 'list']]) {
      const out = await dirsync(args);
      expect(out.code).toBe(0);
      expect(out.stdout + out.stderr).not.toContain(token);
      expect(out.stdout).not.toContain(created.webhookSecret as string);
    }
  });

  it('says clearly when sync --wait has no worker to run it', async () => {
    const { integrationId } = await acme();
    const lonely = `${cli.queue}-noworker`;
    const result = await dirsync(['sync', integrationId, '--wait'], { DIRSYNC_QUEUE: lonely });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^dirsync: run [0-9a-f-]+ is queued but no worker is running to pick it up: start one with `dirsync worker` or `dirsync start`\.$/);
    // That run stays queued and would be picked up by the first worker that starts (its
    // sweeper re-enqueues runs Postgres has queued): mark it failed so no later test meets it.
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    await client.query(`update runs set status = 'failed', error = 'test' where status = 'queued' and integration_id = $1`, [integrationId]);
    await client.end();
  }, 30_000);

  it('syncs the assigned users, app groups and memberships with `dirsync start` running', async () => {
    const { tenant, integrationId } = await acme();
    await server();

    const run = await json<Summary>(['sync', integrationId, '--wait']);
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'manual', error: null });
    expect(run.counts).toEqual({ ...zero, usersCreated: 2, groupsCreated: 2, membershipsAdded: 2 });

    expect(await json(['users', '--tenant', tenant])).toEqual([
      { id: expect.any(String), userName: 'ann.lee@e2e.test', email: 'ann.lee@e2e.test', givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee', active: true, locked: false, groups: ['Engineering'] },
      { id: expect.any(String), userName: 'bob.king@e2e.test', email: 'bob.king@e2e.test', givenName: 'Bob', familyName: 'King', displayName: 'Bob King', active: true, locked: false, groups: ['Ops'] },
    ]);
    expect(await json(['groups', '--tenant', tenant])).toEqual([
      { id: expect.any(String), name: 'Engineering', members: ['ann.lee@e2e.test'] },
      { id: expect.any(String), name: 'Ops', members: ['bob.king@e2e.test'] },
    ]);
  }, 60_000);

  it('a second sync with nothing changed reports all zeros', async () => {
    const { integrationId } = await acme({ synced: true });
    const run = await json<Summary>(['sync', integrationId, '--wait']);
    expect(run.counts).toEqual(zero);
  }, 60_000);

  it('follows changes in Okta run after run', async () => {
    const { okta, tenant, integrationId } = await acme({ synced: true });
    okta.updateUser('00uAnn', { profile: { email: 'ann@new.e2e.test' } });
    expect((await json<Summary>(['sync', integrationId, '--wait'])).counts).toEqual({ ...zero, usersUpdated: 1 });

    okta.updateUser('00uBob', { status: 'SUSPENDED' });
    expect((await json<Summary>(['sync', integrationId, '--wait'])).counts).toEqual({ ...zero, usersDeprovisioned: 1 });
    const bob = async () => (await json<{ userName: string; active: boolean; locked: boolean }[]>(['users', '--tenant', tenant]))[1];
    expect(await bob()).toMatchObject({ active: false, locked: true });

    okta.updateUser('00uBob', { status: 'ACTIVE' });
    expect((await json<Summary>(['sync', integrationId, '--wait'])).counts).toEqual({ ...zero, usersReprovisioned: 1 });
    expect(await bob()).toMatchObject({ active: true, locked: false });

    okta.apps.get('0oaE2E')!.users.delete('00uAnn');
    okta.apps.get('0oaE2E')!.groups.delete('00gEng');
    const run = await json<Summary>(['sync', integrationId, '--wait']);
    // The group's membership goes with it: counted and in the change log.
    expect(run.counts).toEqual({ ...zero, usersDeprovisioned: 1, groupsDeleted: 1, membershipsRemoved: 1 });
    expect(await json(['groups', '--tenant', tenant])).toEqual([{ id: expect.any(String), name: 'Ops', members: ['bob.king@e2e.test'] }]);

    const shown = await json<{ changes: { kind: string; subject: string }[] }>(['run', 'show', run.id]);
    expect(shown.changes.map((c) => [c.kind, c.subject])).toEqual([
      ['membership.removed', 'ann.lee@e2e.test in Engineering'],
      ['user.deprovisioned', 'ann.lee@e2e.test'],
      ['group.deleted', 'Engineering'],
    ]);
    const human = await dirsync(['run', 'show', run.id]);
    expect(human.stdout).toMatch(/changes: +1 user deprovisioned, 1 group deleted, 1 membership removed/);
    expect(human.stdout).toMatch(/user\.deprovisioned[ │]+ann\.lee@e2e\.test[ │]+applied[ │]+mode=suspend reason=out-of-scope/);
  }, 60_000);

  it('queues without --wait, records dry runs, and lists runs newest first', async () => {
    const { okta, tenant, integrationId } = await acme();
    await server();
    const queued = await dirsync(['sync', integrationId]);
    expect(queued.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    // The running worker takes the queued run; let it finish before Okta changes, or it
    // would apply the change the dry run is meant to find.
    await cli.waitForRunStatus(queued.stdout.trim(), { timeoutMs: 20_000 });
    expect((await json<Summary>(['run', 'show', queued.stdout.trim()])).status).toBe('succeeded');
    okta.updateUser('00uBob', { profile: { firstName: 'Robert' } });
    const dry = await json<Summary & { dryRun: boolean }>(['sync', integrationId, '--wait', '--dry-run']);
    expect(dry).toMatchObject({ dryRun: true, status: 'succeeded' });
    expect(dry.counts.usersUpdated).toBe(1);
    const bob = (await json<{ givenName: string }[]>(['users', '--tenant', tenant]))[1];
    expect(bob?.givenName).toBe('Bob');
    // Every run of the integration, newest first: the dry run, then the queued one.
    const runs = await json<{ id: string }[]>(['runs', integrationId]);
    expect(runs.map((r) => r.id)).toEqual([dry.id, queued.stdout.trim()]);
  }, 60_000);

  it('answers bad input with one sentence and a non-zero exit', async () => {
    const { okta, tenant, integrationId } = await acme();
    const cases: [string[], RegExp][] = [
      [['sync', 'not-a-uuid'], /^dirsync: integration not-a-uuid does not exist: `dirsync integration list` shows the ids\.$/],
      [['users', '--tenant', 'nope'], /^dirsync: tenant "nope" does not exist/],
      [['users'], /^dirsync: required option '--tenant <slug>' not specified$/],
      [['integration', 'create', '--tenant', tenant, '--provider', 'okta', '--base-url', 'ftp://x', '--token', 't'], /--base-url ftp:\/\/x must be an https:\/\/ URL/],
      [['integration', 'update', integrationId, '--every', 'often'], /--every "often" is not a duration/],
      [['integration', 'update', integrationId, '--cron', 'nope'], /--cron "nope" must have exactly five fields/],
      [['run', 'show', '00000000-0000-0000-0000-000000000000'], /^dirsync: run 0{8}-.* does not exist/],
      [['frobnicate'], /^dirsync: unknown command 'frobnicate'/],
    ];
    const results = await Promise.all(cases.map(([args]) => dirsync(args)));
    for (const [i, [args, pattern]] of cases.entries()) {
      const result = results[i]!;
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr.trim(), args.join(' ')).toMatch(pattern);
    }
    const noKey = await dirsync(['integration', 'create', '--tenant', tenant, '--provider', 'okta', '--base-url', okta.url, '--token', 't'], { DIRSYNC_ENCRYPTION_KEY: '' });
    expect(noKey.stderr.trim()).toMatch(/^dirsync: DIRSYNC_ENCRYPTION_KEY is not set/);
    const before = (await json<unknown[]>(['runs', integrationId])).length;
    const noRedis = await dirsync(['sync', integrationId], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(noRedis.code).toBe(1);
    expect(noRedis.stderr.trim()).toBe('dirsync: cannot connect to Redis at redis://127.0.0.1:1: is it running, and is REDIS_URL right?');
    expect((await json<unknown[]>(['runs', integrationId])).length).toBe(before);
    const badUrl = await dirsync(['tenant', 'list'], { DATABASE_URL: 'mysql://x' });
    expect(badUrl.stderr.trim()).toBe('dirsync: DATABASE_URL is not a valid postgres:// URL.');
  }, 60_000);

  it('holds a mass removal and applies it on `run approve`', async () => {
    const { okta, integrationId } = await acme({ synced: true });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const u = okta.addUser(`temp${i}@e2e.test`);
      okta.apps.get('0oaE2E')!.users.add(u.id);
      ids.push(u.id);
    }
    expect((await json<Summary>(['sync', integrationId, '--wait'])).counts.usersCreated).toBe(10);
    for (const id of ids.slice(0, 8)) okta.apps.get('0oaE2E')!.users.delete(id);

    const held = await dirsync(['sync', integrationId, '--wait', '--json']);
    expect(held.code).toBe(0);
    const heldRun = JSON.parse(held.stdout) as Summary & { heldReason: string };
    expect(heldRun.status).toBe('held');
    expect(heldRun.counts.usersDeprovisioned).toBe(0);
    expect(heldRun.heldReason).toContain(`dirsync run approve ${heldRun.id}`);
    const shown = await dirsync(['run', 'show', heldRun.id]);
    expect(shown.stdout).toMatch(/held: +8 removals wait for approval/);
    expect(shown.stdout).toMatch(/user\.deprovisioned[ │]+temp0@e2e\.test[ │]+held/);

    const approval = await json<Summary & { approvesRunId: string }>(['run', 'approve', heldRun.id]);
    expect(approval).toMatchObject({ status: 'succeeded', approvesRunId: heldRun.id });
    expect(approval.counts.usersDeprovisioned).toBe(8);
    const again = await dirsync(['run', 'approve', heldRun.id]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`dirsync: run ${heldRun.id} is succeeded, not held: only a held run can be approved.`);

    // Held again, and this time rejected: nothing removed, the held removals recorded as skipped.
    for (const id of ids.slice(8)) okta.apps.get('0oaE2E')!.users.delete(id);
    for (let i = 0; i < 10; i++) okta.apps.get('0oaE2E')!.users.add(okta.addUser(`more${i}@e2e.test`).id);
    await json<Summary>(['sync', integrationId, '--wait']);
    for (const u of [...okta.apps.get('0oaE2E')!.users].filter((id) => okta.users.get(id)!.profile.login.startsWith('more'))) okta.apps.get('0oaE2E')!.users.delete(u);
    const heldAgain = await json<Summary>(['sync', integrationId, '--wait']);
    expect(heldAgain.status).toBe('held');
    const rejected = await json<Summary & { error: string | null }>(['run', 'reject', heldAgain.id]);
    expect(rejected.status).toBe('succeeded');
    const shownRejected = (await dirsync(['run', 'show', heldAgain.id])).stdout;
    expect(shownRejected).toMatch(/user\.deprovisioned[ │]+more0@e2e\.test[ │]+skipped/);
    expect(shownRejected).toMatch(/was held: .* Its removals were rejected by the command line at \d{4}-/);
    expect(shownRejected).not.toContain('dirsync run approve');
    expect((await dirsync(['run', 'reject', heldAgain.id])).stderr.trim()).toBe(`dirsync: run ${heldAgain.id} is succeeded, not held: only a held run can be rejected.`);
  }, 90_000);

  it('an Okta event hook delivery for a deactivated user reaches Postgres within seconds', async () => {
    const { okta, tenant, integrationId } = await acme({ synced: true });
    const secret = (await json<{ webhookSecret: string }>(['integration', 'rotate-webhook-secret', integrationId])).webhookSecret;
    const url = `http://127.0.0.1:${PORT}/webhooks/${integrationId}`;
    const verify = await fetch(url, { headers: { authorization: secret, 'x-okta-verification-challenge': 'c-123' } });
    expect(await verify.json()).toEqual({ verification: 'c-123' });

    okta.updateUser('00uBob', { status: 'DEPROVISIONED' });
    const started = Date.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: secret, 'content-type': 'application/json' },
      body: JSON.stringify(oktaDelivery([{ eventType: 'user.lifecycle.deactivate', target: [{ id: '00uBob', type: 'User' }] }])),
    });
    expect(res.status).toBe(200);
    const { runId } = (await res.json()) as { runId: string };
    // The run the delivery queued is what the wait is for; then the user is read once.
    await cli.waitForRunStatus(runId, { timeoutMs: 10_000 - (Date.now() - started) });
    const bob = (await json<{ userName: string; active: boolean; locked: boolean }[]>(['users', '--tenant', tenant])).find((u) => u.userName === 'bob.king@e2e.test');
    expect(bob).toMatchObject({ active: false, locked: true });
    expect(await json(['run', 'show', runId])).toMatchObject({ trigger: 'webhook', status: 'succeeded' });
    const deliveries = await json<{ outcome: string; runId: string; eventTypes: string[] }[]>(['webhooks', integrationId]);
    expect(deliveries[0]).toMatchObject({ outcome: 'triggered', runId, eventTypes: ['user.lifecycle.deactivate'] });
  }, 60_000);

  it('shows live progress on a terminal, and nothing extra with --json', async () => {
    const { okta, integrationId } = await acme();
    await server();
    // Enough users for several pages.
    for (let i = 0; i < 10; i++) okta.apps.get('0oaE2E')!.users.add(okta.addUser(`temp${i}@e2e.test`).id);
    // Slow, small pages, so the run is still reading when the CLI polls.
    okta.maxPageSize = 2;
    const env = cli.env();
    const cmd = [process.execPath, cli.bin, 'sync', integrationId, '--wait'].map((a) => `'${a}'`).join(' ');
    okta.responseDelayMs = 400;
    const tty = await new Promise<string>((resolve) => {
      // A terminal of a real size: `script`'s pseudo-terminal starts with none.
      execFile('script', ['-qec', `stty cols 120 rows 40; ${cmd}`, '/dev/null'], { env: { ...env, TERM: 'xterm' }, timeout: 60_000 }, (_e, stdout) => resolve(stdout));
    });
    expect(tty, JSON.stringify(tty.slice(0, 3000))).toMatch(/run [0-9a-f-]{36}: reading the IdP: \d+ requests, \d+ records/);
    expect(tty).toMatch(/status: +succeeded/);
    const piped = await cli.run(['sync', integrationId, '--wait', '--json']);
    okta.responseDelayMs = 0;
    okta.maxPageSize = undefined;
    expect(piped.stderr).toBe('');
    expect(JSON.parse(piped.stdout)).toMatchObject({ status: 'succeeded' });
  }, 60_000);

  it('schedules runs with --every, and a scheduled run converges with nothing to do', async () => {
    const { integrationId } = await acme({ synced: true });
    const updated = await json<{ schedule: string }>(['integration', 'update', integrationId, '--every', '1h']);
    expect(updated.schedule).toBe('every 1h');
    // BullMQ fires an `every` scheduler at once, then every hour.
    await waitFor('a scheduled run to succeed', async () =>
      (await cli.query(`select 1 from runs where integration_id = $1 and trigger = 'schedule' and status = 'succeeded'`, [integrationId])).length > 0, {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    const scheduled = (await json<Summary[]>(['runs', integrationId])).find((r) => r.trigger === 'schedule' && r.status === 'succeeded');
    expect(scheduled).toBeDefined();
    expect(scheduled!.counts).toMatchObject({ usersCreated: 0, usersDeprovisioned: 0 });
  }, 60_000);

  it('the server log never contains the token', async () => {
    const { token } = await acme({ synced: true });
    expect(cli.serverLog).toContain('run succeeded');
    expect(cli.serverLog).not.toContain(token);
    // Nor any other test's token.
    for (const other of tokens) expect(cli.serverLog).not.toContain(other);
  }, 60_000);
});
