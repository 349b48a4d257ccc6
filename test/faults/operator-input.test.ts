import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createQueue } from '../../src/queue/queue.js';
import { CliHarness, type CliResult, type RunSummaryJson } from '../support/cli.js';
import { TEST_KEY } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { recordFigures } from './support/figures.js';

/**
 * Every command of the CLI given a missing, unknown or malformed argument, option or setting:
 * each must answer with exactly one sentence on stderr, print nothing on stdout, exit non-zero,
 * and leave the data (every row of every table, and the queue) exactly as it was. Then a
 * worker with the wrong DIRSYNC_ENCRYPTION_KEY: its runs must fail saying so, not as an IdP
 * authentication failure.
 *
 * Every test sets up the tenant, integrations, fake Okta and queued run it needs (`fixture`), so
 * each passes on its own (`it.only`) and in any order; only the database's migration is shared.
 */

const cli = new CliHarness();
const WRONG_KEY = randomBytes(32).toString('base64');
const ZERO = '00000000-0000-0000-0000-000000000000';

/** Faults injected by the tests that ran, for the suite's figures. */
let faults = 0;
/** Every Okta token the tests handed the CLI: none may appear in a worker's log. */
const tokens: string[] = [];

type Case = readonly [args: string[], expected: RegExp, env?: Record<string, string>];

/** Runs `fn` over `items`, `limit` at a time: every spawn costs a core for half a second. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

/** A port on 127.0.0.1 that nothing listens on (it did a moment ago). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Everything a command could change: every row of every table, and the queue's keys and jobs. */
async function dumpData(): Promise<string> {
  const client = new pg.Client({ connectionString: cli.dbUrl });
  await client.connect();
  const parts: string[] = [];
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      `select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
    );
    for (const { name } of tables) {
      // The audit log records every attempt, refused ones included (SPEC: every admin action,
      // with its outcome): appending to it is what a refused command should do.
      if (name === 'audit_log') continue;
      const { rows } = await client.query<{ row: string }>(`select t::text as row from "${name}" t order by 1`);
      parts.push(`-- ${name}`, ...rows.map((r) => r.row));
    }
  } finally {
    await client.end();
  }
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    for (const key of (await redis.keys(`bull:${cli.queue}:*`)).sort()) {
      const type = await redis.type(key);
      const value =
        type === 'list' ? await redis.lrange(key, 0, -1) : type === 'zset' ? await redis.zrange(key, 0, -1) : type === 'set' ? (await redis.smembers(key)).sort() : type;
      parts.push(`${key} ${JSON.stringify(value)}`);
    }
  } finally {
    redis.disconnect();
  }
  return parts.join('\n');
}

/**
 * Asserts the one-sentence answer of every case, and that the cases left every row and the
 * queue exactly as they were and never called the IdP; returns how many cases there were.
 */
async function expectOneSentence(okta: FakeOkta, cases: readonly Case[]): Promise<number> {
  const before = await dumpData();
  const requestsBefore = okta.requests.length;
  const results = await mapLimit(cases, 6, ([args, , env]) => cli.run(args, env));
  const wrong: string[] = [];
  cases.forEach(([args, expected], i) => {
    const r = results[i] as CliResult;
    const lines = r.stderr.trim().split('\n');
    const ok = r.code !== 0 && r.stdout === '' && lines.length === 1 && /^dirsync: \S.*\S$/.test(lines[0]!) && expected.test(lines[0]!);
    if (!ok) wrong.push(`dirsync ${args.join(' ')} -> exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)} (expected ${expected})`);
  });
  expect(wrong).toEqual([]);
  expect(await dumpData(), 'the commands changed data').toBe(before);
  expect(okta.requests.length, 'the commands called the IdP').toBe(requestsBefore);
  faults += cases.length;
  return cases.length;
}

beforeAll(async () => {
  await cli.createDatabase();
}, 120_000);

let worker: ChildProcess | undefined;

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((resolve) => worker!.once('exit', resolve));
    worker.kill('SIGTERM');
    await exited;
  }
  const client = new pg.Client({ connectionString: cli.dbUrl });
  await client.connect();
  const runs = Number((await client.query<{ n: string }>('select count(*) as n from runs')).rows[0]!.n);
  await client.end();
  const redis = new Redis('redis://127.0.0.1:6379');
  const keys = await redis.keys(`bull:${cli.queue}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await cli.stop();
  if (faults > 0) {
    recordFigures({
      scenario: 'operator input: missing, unknown and malformed arguments and settings',
      rounds: 1,
      faults,
      runs,
      changesLost: 0,
      wrongfulDeprovisions: 0,
      note: 'every command answers one sentence on stderr with a non-zero exit and changes nothing; a wrong encryption key fails runs as such; IdP URLs on loopback are refused in the same words whether the port is closed, open or not speaking TLS',
    });
  }
});

interface Fixture {
  okta: FakeOkta;
  token: string;
  /** The tenant's slug (when asked for). */
  tenant: string;
  /** Its Okta integration. */
  id: string;
  /** Its authentik integration, disabled. */
  disabledId: string;
  /** A run of the Okta integration left queued: no worker runs, which is not a state `run approve` accepts. */
  queuedRunId: string;
}

/**
 * The queue as any installation that has ever run has it: opened once, so BullMQ has written
 * its `meta` key. (Opening a BullMQ queue writes that key; a command that connects to the
 * queue before refusing its input would otherwise show up as a change.)
 */
async function queueInUse(): Promise<void> {
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const queue = createQueue(cli.queue, redis);
  try {
    await queue.waitUntilReady();
    await waitForMeta(redis);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

async function waitForMeta(redis: Redis): Promise<void> {
  for (let i = 0; i < 100 && !(await redis.exists(`bull:${cli.queue}:meta`)); i++) await new Promise((r) => setTimeout(r, 20));
}

/**
 * What one test needs, of its own: a fake Okta org (one user, ann) with a token of its own,
 * stopped when the test ends, and the queue in use; and, as asked, a tenant, an Okta
 * integration for that org, a disabled authentik integration, and a run queued with no
 * worker running.
 */
async function fixture(options: { tenant?: boolean; integration?: boolean; disabled?: boolean; queued?: boolean } = {}): Promise<Fixture> {
  const okta = await new FakeOkta().start();
  onTestFinished(() => okta.stop());
  const token = `okta-${randomBytes(12).toString('hex')}`;
  tokens.push(token);
  okta.token = token;
  okta.addUser('ann.lee@input.test', { id: '00uAnn' });
  const f: Fixture = { okta, token, tenant: '', id: '', disabledId: '', queuedRunId: '' };
  await queueInUse();
  if (!(options.tenant || options.integration || options.disabled || options.queued)) return f;
  f.tenant = `acme-${randomBytes(3).toString('hex')}`;
  // The tenant and integrations are made in this process, by the functions their commands
  // call: the commands' own refusals are what these tests are about, and every process
  // started costs seconds on a busy machine. The run is queued by the CLI (the queue is Redis).
  await cli.createTenant(f.tenant);
  await Promise.all([
    (async () => {
      if (options.integration || options.queued) f.id = (await cli.createIntegration({ tenant: f.tenant, provider: 'okta', baseUrl: okta.url, token })).id;
    })(),
    (async () => {
      if (options.disabled) {
        f.disabledId = (await cli.createIntegration({ tenant: f.tenant, provider: 'authentik', baseUrl: 'https://auth.input.test', token, verify: false })).id;
        await cli.disableIntegration(f.disabledId);
      }
    })(),
  ]);
  if (options.queued) f.queuedRunId = (await cli.json<{ id: string }>(['sync', f.id])).id;
  return f;
}

describe('bad operator input', () => {
  it('the program itself and service commands', async () => {
    const { okta } = await fixture();
    const pgDown = 'postgres://postgres@127.0.0.1:1/dirsync';
    const noTables = new URL(process.env.DATABASE_URL!);
    noTables.pathname = '/postgres';
    const noDatabase = new URL(process.env.DATABASE_URL!);
    noDatabase.pathname = `/${cli.dbName}_missing`;
    await expectOneSentence(okta, [
      [[], /^dirsync: missing command: `dirsync --help` lists the commands$/],
      [['frobnicate'], /^dirsync: unknown command 'frobnicate'$/],
      [['tenants'], /^dirsync: unknown command 'tenants' \(did you mean tenant\?\)$/],
      [['--bogus'], /^dirsync: unknown option '--bogus'$/],
      [['migrate', 'extra'], /too many arguments for 'migrate'/],
      [['migrate'], /^dirsync: DATABASE_URL is not a valid postgres:\/\/ URL\.$/, { DATABASE_URL: 'mysql://x' }],
      [['migrate'], /^dirsync: DATABASE_URL is not a valid postgres:\/\/ URL\.$/, { DATABASE_URL: 'postgres://[bad' }],
      [['migrate'], /^dirsync: Cannot connect to PostgreSQL at 127\.0\.0\.1:1 \(connection refused\): is it running, and is DATABASE_URL right\?$/, { DATABASE_URL: pgDown }],
      [['migrate'], /^dirsync: Cannot connect to PostgreSQL at nohost\.invalid:5432 \(unknown host\)/, { DATABASE_URL: 'postgres://postgres@nohost.invalid/dirsync' }],
      [['migrate'], /^dirsync: PostgreSQL refused the login \(role "nobody" does not exist\): check the user and password in DATABASE_URL\.$/, { DATABASE_URL: 'postgres://nobody@127.0.0.1:5432/dirsync' }],
      [['tenant', 'list'], /^dirsync: Cannot connect to PostgreSQL at 127\.0\.0\.1:1/, { DATABASE_URL: pgDown }],
      [['tenant', 'list'], /^dirsync: database ".*_missing" does not exist\. Run `dirsync migrate` first, which creates it\.$/, { DATABASE_URL: noDatabase.toString() }],
      [['tenant', 'list'], /^dirsync: The database has no dirsync tables yet: run `dirsync migrate` first\.$/, { DATABASE_URL: noTables.toString() }],
      [['tenant', 'list'], /^dirsync: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent\.$/, { LOG_LEVEL: 'loud' }],
      [['tenant', 'list'], /^dirsync: PORT must be a port number \(1-65535\)\.$/, { PORT: 'abc' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_QUEUE may contain only letters, digits, - and _\.$/, { DIRSYNC_QUEUE: 'a b' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_PUBLIC_URL is not a valid URL\.$/, { DIRSYNC_PUBLIC_URL: 'nope' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_ALLOW_HTTP must be true or false\.$/, { DIRSYNC_ALLOW_HTTP: 'maybe' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_ALLOW_PRIVATE_NETWORK must be true or false\.$/, { DIRSYNC_ALLOW_PRIVATE_NETWORK: 'maybe' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_ENCRYPTION_KEY must be 32 random bytes in base64/, { DIRSYNC_ENCRYPTION_KEY: 'c2hvcnQ=' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_ADMIN_TOKEN must be at least 16 characters\.$/, { DIRSYNC_ADMIN_TOKEN: 'short' }],
      [['tenant', 'list'], /^dirsync: DIRSYNC_RETENTION must be a duration from 3d to 3650d, such as 30d or 90d, not "forever"\.$/, { DIRSYNC_RETENTION: 'forever' }],
      [['worker'], /^dirsync: DIRSYNC_RETENTION must be a duration from 3d to 3650d, such as 30d or 90d, not "1h"\.$/, { DIRSYNC_RETENTION: '1h' }],
      [['tenant', 'list'], /^dirsync: HOST must be an IP address to listen on, such as 127\.0\.0\.1/, { HOST: 'example.com' }],
      [['server'], /^dirsync: HOST must be an IP address to listen on/, { HOST: '0.0.0.0:3000' }],
      [['start', 'extra'], /too many arguments for 'start'/],
      [['worker', '--bogus'], /^dirsync: unknown option '--bogus'$/],
      [['server', 'x'], /too many arguments for 'server'/],
      [['start'], /^dirsync: PORT must be 1-65535\.$/, { PORT: '99999' }],
      [['worker'], /^dirsync: DIRSYNC_ENCRYPTION_KEY is not set: generate one with `openssl rand -base64 32`/, { DIRSYNC_ENCRYPTION_KEY: '' }],
      [['start'], /^dirsync: Cannot connect to PostgreSQL at 127\.0\.0\.1:1/, { DATABASE_URL: pgDown }],
      // The fake IdP holds a port on 127.0.0.1: the server cannot have it too.
      [['server'], /^dirsync: Port \d+ is already in use: stop whatever listens there, or set PORT to a free port\.$/, { PORT: new URL(okta.url).port }],
    ]);
  }, 180_000);

  it('tenant commands', async () => {
    const { okta, tenant } = await fixture({ tenant: true });
    await expectOneSentence(okta, [
      [['tenant'], /^dirsync: missing command: `dirsync tenant` takes create or list \(`dirsync tenant --help` explains them\)$/],
      [['tenant', 'frob'], /^dirsync: unknown command 'frob'$/],
      [['tenant', 'create'], /^dirsync: missing required argument 'slug'$/],
      [['tenant', 'create', 'Bad_Slug'], /^dirsync: tenant slug "Bad_Slug" is not valid: use lowercase letters, digits and dashes/],
      [['tenant', 'create', '-dash'], /unknown option '-dash'/],
      [['tenant', 'create', tenant], new RegExp(`^dirsync: tenant "${tenant}" already exists\\.$`)],
      [['tenant', 'create', 'nul-name', '--name', 'a\u0001b'], /^dirsync: --name holds a control character/],
      [['tenant', 'create', 'long-name', '--name', 'x'.repeat(201)], /^dirsync: --name is longer than 200 characters\.$/],
      [['tenant', 'create', 'x', '--name'], /^dirsync: option '--name <name>' argument missing$/],
      [['tenant', 'create', 'a', 'b'], /too many arguments for 'create'/],
      [['tenant', 'list', 'extra'], /too many arguments for 'list'/],
      [['tenant', 'list', '--bogus'], /^dirsync: unknown option '--bogus'$/],
    ]);
  }, 180_000);

  it('integration create', async () => {
    const { okta, tenant } = await fixture({ tenant: true });
    const create = (...more: string[]) => ['integration', 'create', '--tenant', tenant, ...more];
    const okta_ = (...more: string[]) => create('--provider', 'okta', '--base-url', 'https://acme.okta.test', '--token', 'tok-123456789', ...more);
    await expectOneSentence(okta, [
      [['integration'], /^dirsync: missing command: `dirsync integration` takes create, update, test, list, show, enable, disable, delete, rotate-scim-token or rotate-webhook-secret/],
      [['integration', 'frob'], /^dirsync: unknown command 'frob'$/],
      [['integration', 'create'], /^dirsync: required option '--tenant <slug>' not specified$/],
      [create(), /^dirsync: required option '--provider <provider>' not specified$/],
      [create('--provider', 'foo'), /^dirsync: --provider must be one of okta, authentik, scim, not "foo"\.$/],
      [['integration', 'create', '--tenant', 'nope', '--provider', 'okta'], /^dirsync: tenant "nope" does not exist: create it with `dirsync tenant create nope`\.$/],
      [create('--provider', 'okta'), /^dirsync: --base-url is required: the Okta org URL/],
      [create('--provider', 'authentik', '--base-url', 'https://auth.test'), /^dirsync: --token is required: an authentik API token/],
      [create('--provider', 'okta', '--base-url', 'https://acme.okta.test'), /^dirsync: --token or --okta-client-id with --okta-private-key-file is required: an Okta API token, or an OAuth service app/],
      [create('--provider', 'okta', '--base-url', 'x', '--token', 't'), /^dirsync: --base-url "x" is not a URL/],
      [create('--provider', 'okta', '--base-url', 'ftp://x', '--token', 't'), /^dirsync: --base-url ftp:\/\/x must be an https:\/\/ URL\.$/],
      [create('--provider', 'okta', '--base-url', 'http://acme.okta.test', '--token', 't'), /uses http:\/\/, which would send the token in clear/, { DIRSYNC_ALLOW_HTTP: 'false' }],
      [create('--provider', 'okta', '--base-url', 'https://x', '--token', ''), /^dirsync: --token must not be empty\.$/],
      [create('--provider', 'okta', '--base-url', 'https://x', '--token'), /^dirsync: option '--token <token>' argument missing$/],
      [okta_('--threshold', 'abc'), /^dirsync: --threshold must be a percentage from 0\.01 to 100 with at most two decimals, such as 5 or 2\.5, not "abc"\.$/],
      [okta_('--threshold', '0'), /--threshold must be a percentage/],
      [okta_('--threshold', '101'), /--threshold must be a percentage/],
      [okta_('--threshold', '0x10'), /--threshold must be a percentage/],
      [okta_('--threshold', '1e-300'), /--threshold must be a percentage/],
      [okta_('--threshold', '5.555'), /--threshold must be a percentage/],
      [okta_('--deprovision', 'nuke'), /^dirsync: --deprovision must be suspend, remove-access or delete, not "nuke"\.$/],
      [okta_('--authentik-app', 'wiki'), /^dirsync: --authentik-app applies only to authentik integrations\.$/],
      [create('--provider', 'authentik', '--base-url', 'https://auth.test', '--token', 't', '--okta-app-id', '0oa1'), /^dirsync: --okta-app-id applies only to okta integrations\.$/],
      [okta_('--okta-app-id', 'a/b'), /^dirsync: --okta-app-id "a\/b" is not an Okta app id/],
      [create('--provider', 'authentik', '--base-url', 'https://auth.test', '--token', 't', '--authentik-app', 'a b'), /is not an application slug/],
      [okta_('--every', 'often'), /^dirsync: --every "often" is not a duration/],
      [okta_('--every', '1s'), /^dirsync: --every 1s is too frequent: the minimum is 1m\.$/],
      [okta_('--every', '1h', '--cron', '0 * * * *'), /^dirsync: give either --every or --cron, not both\.$/],
      [okta_('--cron', 'nope'), /^dirsync: --cron "nope" must have exactly five fields/],
      [okta_('--cron', '* * * * * *'), /^dirsync: --cron "\* \* \* \* \* \*" must have exactly five fields \(minute hour day-of-month month day-of-week\)/],
      [okta_('--cron', '* * * *'), /must have exactly five fields/],
      [okta_('--cron', '@hourly'), /must have exactly five fields/],
      [okta_('--cron', '61 * * * *'), /^dirsync: --cron "61 \* \* \* \*" is not a valid cron expression/],
      [okta_('--every', '106751991167d'), /^dirsync: --every "106751991167d" is too long: the maximum is 365d\.$/],
      [okta_('--every', '366d'), /^dirsync: --every 366d is too long: the maximum is 365d\.$/],
      [okta_('--every', '99999999999999999999d'), /^dirsync: --every "99999999999999999999d" is too long: the maximum is 365d\.$/],
      [okta_('--bogus'), /^dirsync: unknown option '--bogus'$/],
      [okta_('extra'), /too many arguments for 'create'/],
      [okta_(), /^dirsync: DIRSYNC_ENCRYPTION_KEY is not set/, { DIRSYNC_ENCRYPTION_KEY: '' }],
      [okta_(), /^dirsync: DIRSYNC_ENCRYPTION_KEY must be 32 random bytes in base64/, { DIRSYNC_ENCRYPTION_KEY: 'not a key' }],
      [okta_(), /^dirsync: cannot connect to Redis at redis:\/\/127\.0\.0\.1:1\/?: is it running, and is REDIS_URL right\?$/, { REDIS_URL: 'redis://127.0.0.1:1' }],
      [okta_(), /^dirsync: REDIS_URL is not a valid redis:\/\/ URL\.$/, { REDIS_URL: 'http://x' }],
    ]);
  }, 180_000);

  it('integration create: IdP tokens given by file, stdin or DIRSYNC_IDP_TOKEN', async () => {
    const { okta, tenant } = await fixture({ tenant: true });
    const create = (...more: string[]) => ['integration', 'create', '--tenant', tenant, ...more];
    const okta_ = (...more: string[]) => create('--provider', 'okta', '--base-url', 'https://acme.okta.test', '--token', 'tok-123456789', ...more);
    const oktaNoToken = (...more: string[]) => create('--provider', 'okta', '--base-url', 'https://acme.okta.test', ...more);
    const files = mkdtempSync(path.join(tmpdir(), 'dirsync-input-'));
    onTestFinished(() => rmSync(files, { recursive: true, force: true }));
    const file = (name: string, text: string) => {
      writeFileSync(path.join(files, name), text);
      return path.join(files, name);
    };
    const [emptyFile, twoLines, tokenFile] = [file('empty', '\n'), file('two-lines', 'tok-1\ntok-2\n'), file('token', 'tok-123456789\n')];
    await expectOneSentence(okta, [
      [oktaNoToken('--token-file', path.join(files, 'missing')), /^dirsync: cannot read --token-file .*missing: no such file\.$/],
      [oktaNoToken('--token-file', files), /^dirsync: cannot read --token-file .*: it is a directory\.$/],
      [oktaNoToken('--token-file', emptyFile), /^dirsync: --token-file .* is empty: it must hold the IdP's API token\.$/],
      [oktaNoToken('--token-file', twoLines), /^dirsync: --token-file .* holds more than one line: it must hold only the IdP's API token\.$/],
      [oktaNoToken('--token-file'), /^dirsync: option '--token-file <path>' argument missing$/],
      [okta_('--token-file', tokenFile), /^dirsync: the IdP token is given 2 ways \(--token, --token-file\): give it only once\.$/],
      [oktaNoToken('--token-file', tokenFile), /^dirsync: the IdP token is given 2 ways \(--token-file, DIRSYNC_IDP_TOKEN\): give it only once\.$/, { DIRSYNC_IDP_TOKEN: 'tok-123456789' }],
      [okta_(), /^dirsync: the IdP token is given 2 ways \(--token, DIRSYNC_IDP_TOKEN\): give it only once\.$/, { DIRSYNC_IDP_TOKEN: 'tok-123456789' }],
      [oktaNoToken(), /^dirsync: DIRSYNC_IDP_TOKEN is empty: it must hold the IdP's API token\.$/, { DIRSYNC_IDP_TOKEN: '' }],
      [oktaNoToken('--okta-client-id', '0oa1'), /^dirsync: DIRSYNC_IDP_TOKEN gives a token and the --okta-\* options a service app: unset DIRSYNC_IDP_TOKEN to use the service app\.$/, { DIRSYNC_IDP_TOKEN: 'tok-123456789' }],
    ]);
  }, 180_000);

  it('integration update, show, list, enable, disable, delete and rotate-webhook-secret', async () => {
    const { okta, tenant, id, disabledId } = await fixture({ integration: true, disabled: true });
    const notFound = (what: string) => new RegExp(`^dirsync: integration ${what} does not exist: \`dirsync integration list\` shows the ids\\.$`);
    await expectOneSentence(okta, [
      [['integration', 'update'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'update', id], /^dirsync: nothing to update: give at least one option, such as --token or --every\.$/],
      [['integration', 'update', ZERO, '--every', '1h'], notFound(ZERO)],
      [['integration', 'update', 'nope', '--every', '1h'], notFound('nope')],
      [['integration', 'update', id, '--tenant', tenant], /^dirsync: unknown option '--tenant'$/],
      [['integration', 'update', id, '--provider', 'authentik'], /^dirsync: unknown option '--provider'$/],
      [['integration', 'update', id, '--base-url', 'ftp://x'], /must be an https:\/\/ URL/],
      [['integration', 'update', id, '--threshold', '0'], /--threshold must be a percentage/],
      [['integration', 'update', id, '--token', '  '], /^dirsync: --token must not be empty\.$/],
      // Stored credentials never follow a new address (nothing listens on port 1: no request is made either way).
      [['integration', 'update', id, '--base-url', 'http://127.0.0.1:1'], /^dirsync: --base-url moves the integration from http:\/\/127\.0\.0\.1:\d+ to http:\/\/127\.0\.0\.1:1, and stored credentials are never sent to a new address: give --token in the same update\.$/],
      [['integration', 'update', id, '--base-url', 'http://127.0.0.1:1', '--no-verify'], /stored credentials are never sent to a new address: give --token in the same update\.$/],
      [['integration', 'update', disabledId, '--base-url', 'http://127.0.0.1:1', '--no-verify', '--every', '1h'], /^dirsync: --base-url moves the integration from https:\/\/auth\.input\.test to http:\/\/127\.0\.0\.1:1, .*give --token in the same update\.$/],
      [['integration', 'update', id, '--token-file', '/nonexistent/token'], /^dirsync: cannot read --token-file \/nonexistent\/token: no such file\.$/],
      [['integration', 'update', id, '--every', 'often'], /--every "often" is not a duration/],
      [['integration', 'update', id, '--cron', 'nope'], /--cron "nope" must have exactly five fields/],
      [['integration', 'update', id, '--authentik-app', 'wiki'], /--authentik-app applies only to authentik integrations/],
      [['integration', 'update', id, '--every', '1h', '--token', 'new-token-123'], /^dirsync: DIRSYNC_ENCRYPTION_KEY is not set/, { DIRSYNC_ENCRYPTION_KEY: '' }],
      [['integration', 'update', id, '--every', '1h'], /^dirsync: cannot connect to Redis/, { REDIS_URL: 'redis://127.0.0.1:1' }],
      [['integration', 'update', id, 'extra', '--every', '1h'], /too many arguments for 'update'/],
      [['integration', 'show'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'show', ZERO], notFound(ZERO)],
      [['integration', 'show', 'nope'], notFound('nope')],
      [['integration', 'show', id, 'extra'], /too many arguments for 'show'/],
      [['integration', 'list', '--tenant', 'nope'], /^dirsync: tenant "nope" does not exist/],
      [['integration', 'list', '--tenant'], /^dirsync: option '--tenant <slug>' argument missing$/],
      [['integration', 'list', 'extra'], /too many arguments for 'list'/],
      [['integration', 'enable'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'enable', ZERO], notFound(ZERO)],
      [['integration', 'enable', 'nope'], notFound('nope')],
      [['integration', 'enable', disabledId], /^dirsync: cannot connect to Redis/, { REDIS_URL: 'redis://127.0.0.1:1' }],
      [['integration', 'disable'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'disable', 'nope'], notFound('nope')],
      [['integration', 'disable', ZERO, '--bogus'], /^dirsync: unknown option '--bogus'$/],
      [['integration', 'delete'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'delete', ZERO], notFound(ZERO)],
      [['integration', 'delete', 'nope'], notFound('nope')],
      [['integration', 'delete', id], /^dirsync: cannot connect to Redis/, { REDIS_URL: 'redis://127.0.0.1:1' }],
      [['integration', 'delete', id], /^dirsync: integration delete removes integration [0-9a-f-]+ with its groups, memberships and run history: run it again with --yes to confirm\.$/],
      [['integration', 'rotate-webhook-secret'], /^dirsync: missing required argument 'id'$/],
      [['integration', 'rotate-webhook-secret', ZERO], notFound(ZERO)],
      [['integration', 'rotate-webhook-secret', 'nope'], notFound('nope')],
    ]);
  }, 180_000);

  it('sync, runs, run show and run approve', async () => {
    const { okta, id, disabledId, queuedRunId } = await fixture({ integration: true, disabled: true, queued: true });
    await expectOneSentence(okta, [
      [['sync'], /^dirsync: missing required argument 'integration-id'$/],
      [['sync', ZERO], /^dirsync: integration 0{8}-.* does not exist/],
      [['sync', 'nope', '--wait'], /^dirsync: integration nope does not exist/],
      [['sync', disabledId], new RegExp(`^dirsync: integration ${disabledId} is disabled: enable it with \`dirsync integration enable ${disabledId}\`\\.$`)],
      [['sync', id, '--timeout', 'abc', '--wait'], /^dirsync: --timeout must be a number of seconds above 0, not "abc"\.$/],
      [['sync', id, '--timeout', '-1'], /^dirsync: --timeout must be a number of seconds above 0, not "-1"\.$/],
      [['sync', id, '--bogus'], /^dirsync: unknown option '--bogus'$/],
      [['sync', id, 'extra'], /too many arguments for 'sync'/],
      [['sync', id], /^dirsync: cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/, { REDIS_URL: 'redis://127.0.0.1:1' }],
      [['sync', id], /^dirsync: REDIS_URL is not a valid redis:\/\/ URL\.$/, { REDIS_URL: 'http://x' }],
      [['runs'], /^dirsync: missing required argument 'integration-id'$/],
      [['runs', ZERO], /^dirsync: integration 0{8}-.* does not exist/],
      [['runs', 'nope'], /^dirsync: integration nope does not exist/],
      [['runs', id, '--limit', '0'], /^dirsync: --limit must be a whole number from 1 to 1000, not "0"\.$/],
      [['runs', id, '--limit', 'x'], /--limit must be a whole number from 1 to 1000, not "x"/],
      [['runs', id, '--limit', '1001'], /--limit must be a whole number from 1 to 1000, not "1001"/],
      [['runs', id, '--limit'], /^dirsync: option '--limit <n>' argument missing$/],
      [['run'], /^dirsync: missing command: `dirsync run` takes approve, reject or show \(`dirsync run --help` explains them\)$/],
      [['run', 'reject'], /^dirsync: missing required argument 'run-id'$/],
      [['run', 'reject', 'nope'], /^dirsync: run nope does not exist/],
      [['run', 'reject', queuedRunId], new RegExp(`^dirsync: run ${queuedRunId} is queued, not held: only a held run can be rejected\\.$`)],
      [['run', 'frob'], /^dirsync: unknown command 'frob'$/],
      [['run', 'show'], /^dirsync: missing required argument 'run-id'$/],
      [['run', 'show', 'nope'], /^dirsync: run nope does not exist: `dirsync runs <integration-id>` lists the runs\.$/],
      [['run', 'show', ZERO], /^dirsync: run 0{8}-.* does not exist/],
      [['run', 'show', queuedRunId, 'extra'], /too many arguments for 'show'/],
      [['run', 'approve'], /^dirsync: missing required argument 'run-id'$/],
      [['run', 'approve', 'nope'], /^dirsync: run nope does not exist/],
      [['run', 'approve', ZERO], /^dirsync: run 0{8}-.* does not exist/],
      [['run', 'approve', queuedRunId], new RegExp(`^dirsync: run ${queuedRunId} is queued, not held: only a held run can be approved\\.$`)],
      [['run', 'approve', queuedRunId, '--timeout', 'x'], /^dirsync: --timeout must be a number of seconds above 0, not "x"\.$/],
      [['run', 'approve', queuedRunId], /^dirsync: cannot connect to Redis/, { REDIS_URL: 'redis://127.0.0.1:1' }],
    ]);
  }, 180_000);

  it('IdP URLs on loopback in a process without DIRSYNC_ALLOW_PRIVATE_NETWORK: one refusal, the same whatever listens there', async () => {
    const { okta, tenant } = await fixture({ tenant: true });
    const strict = { DIRSYNC_ALLOW_PRIVATE_NETWORK: 'false' };
    const oktaPort = new URL(okta.url).port;
    const closed = await freePort();
    // Stored by a process that allows private networks (an admin may have changed the setting since).
    const stored = async (baseUrl: string) => (await cli.createIntegration({ tenant, provider: 'okta', baseUrl, token: 'tok-123456789', verify: false })).id;
    const sentence = (host: string) =>
      `${host} a loopback, private, link-local or other non-public address, which dirsync does not connect to; set DIRSYNC_ALLOW_PRIVATE_NETWORK=true for IdPs and event endpoints on a private network`;
    const targets: Array<[what: string, baseUrl: string, expected: string]> = [
      ['closed port', `https://127.0.0.1:${closed}`, sentence('127.0.0.1 is')],
      ['open port, not speaking TLS', `https://127.0.0.1:${oktaPort}`, sentence('127.0.0.1 is')],
      ['open port, the IdP answering', `http://127.0.0.1:${oktaPort}`, sentence('127.0.0.1 is')],
      ['IPv6 loopback, closed port', `https://[::1]:${closed}`, sentence('[::1] is')],
      ['a name for loopback', `https://localhost:${oktaPort}`, sentence('localhost resolves to')],
    ];
    const ids = await mapLimit(targets, 3, ([, baseUrl]) => stored(baseUrl));
    const before = await dumpData();
    const requestsBefore = okta.requests.length;
    // As JSON for each; as text for the three on 127.0.0.1, to compare them whole.
    const results = await mapLimit(ids, 3, async (id, i) => [await cli.run(['integration', 'test', id, '--json'], strict), i < 3 ? await cli.run(['integration', 'test', id], strict) : undefined] as const);
    const texts: string[] = [];
    targets.forEach(([what, , expected], i) => {
      const [asJson, asText] = results[i]!;
      expect(asJson.stderr, `${what}: ${JSON.stringify(asJson)}`).toBe('dirsync: 1 of 7 endpoints failed the check.\n');
      expect(asJson.code, what).toBe(1);
      const report = JSON.parse(asJson.stdout) as { ok: boolean; checks: Array<{ endpoint: string; ok: boolean; problem?: string; message?: string }> };
      expect(report.checks[0], what).toEqual({ endpoint: 'GET /api/v1/users', ok: false, problem: 'private-address', message: expected });
      expect(report.checks.slice(1).map((c) => c.problem), what).toEqual(Array(6).fill('not-checked'));
      if (asText) {
        expect(asText.code, what).toBe(1);
        texts.push(asText.stdout);
      }
    });
    // Closed, open but not TLS, open and answering: not a character apart.
    expect(new Set(texts.slice(0, 3)).size).toBe(1);
    // Storing such a URL with the check on is refused the same way, and stores nothing.
    const create = await cli.run(['integration', 'create', '--tenant', tenant, '--provider', 'okta', '--base-url', `https://127.0.0.1:${oktaPort}`, '--token', 'tok-123456789'], strict);
    expect(create.code).toBe(1);
    expect(create.stderr).toContain(sentence('127.0.0.1 is'));
    expect(create.stderr.trim().split('\n').at(-1)).toMatch(/^dirsync: the IdP check failed at 1 endpoint, so nothing was stored/);
    expect(await dumpData(), 'the commands changed data').toBe(before);
    expect(okta.requests.length, 'the commands called the IdP').toBe(requestsBefore);
    faults += targets.length + 3 + 1;
  }, 240_000);

  it('users, groups and webhooks', async () => {
    const { okta, tenant, id } = await fixture({ integration: true });
    await expectOneSentence(okta, [
      [['users'], /^dirsync: required option '--tenant <slug>' not specified$/],
      [['users', '--tenant'], /^dirsync: option '--tenant <slug>' argument missing$/],
      [['users', '--tenant', 'NOPE'], /^dirsync: tenant "NOPE" does not exist: `dirsync tenant list` shows the tenants\.$/],
      [['users', '--tenant', tenant, 'extra'], /too many arguments for 'users'/],
      [['groups'], /^dirsync: required option '--tenant <slug>' not specified$/],
      [['groups', '--tenant', 'nope'], /^dirsync: tenant "nope" does not exist/],
      [['groups', '--tenant', tenant, '--bogus'], /^dirsync: unknown option '--bogus'$/],
      [['webhooks'], /^dirsync: missing required argument 'integration-id'$/],
      [['webhooks', ZERO], /^dirsync: integration 0{8}-.* does not exist/],
      [['webhooks', 'nope'], /^dirsync: integration nope does not exist/],
      [['webhooks', id, '--limit', '-5'], /^dirsync: --limit must be a whole number from 1 to 1000, not "-5"\.$/],
    ]);
  }, 180_000);
});

describe('a worker with the wrong DIRSYNC_ENCRYPTION_KEY', () => {
  /** Both workers' output, stdout and stderr. */
  let log = '';

  async function startWorker(key: string): Promise<void> {
    let own = '';
    worker = spawn(process.execPath, [cli.bin, 'worker'], { env: cli.env({ DIRSYNC_ENCRYPTION_KEY: key, LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [worker.stdout!, worker.stderr!]) stream.on('data', (d) => ((own += d), (log += d)));
    // Loading the worker takes seconds, many more on a machine busy with other suites.
    const deadline = Date.now() + 60_000;
    while (!own.includes('worker started') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(own).toContain('worker started');
  }

  async function stopWorker(): Promise<void> {
    const exited = new Promise((resolve) => worker!.once('exit', resolve));
    worker!.kill('SIGTERM');
    await exited;
  }

  it('fails its runs saying the key is wrong, without calling the IdP, and a worker with the right key recovers', async () => {
    const { okta, id, queuedRunId } = await fixture({ integration: true, queued: true });
    expect(WRONG_KEY).not.toBe(TEST_KEY);
    const requestsBefore = okta.requests.length;
    await startWorker(WRONG_KEY);
    const [asJson, asText] = await Promise.all([cli.run(['sync', id, '--wait', '--json']), cli.run(['sync', id, '--wait'])]);
    expect(asJson.code).toBe(1);
    const run = JSON.parse(asJson.stdout) as RunSummaryJson;
    expect(run.status).toBe('failed');
    const keyMessage = /^cannot read the integration's credentials: stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured/;
    expect(run.error).toMatch(keyMessage);
    expect(run.error).not.toMatch(/HTTP|401|403|rejected|token/i);
    expect(asText.code).toBe(1);
    expect(asText.stdout).toMatch(/error: +cannot read the integration's credentials: stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY/);
    // The run queued before any worker ran fails the same way.
    const queued = await cli.json<RunSummaryJson>(['run', 'show', queuedRunId]);
    expect(queued).toMatchObject({ status: 'failed' });
    expect(queued.error).toMatch(keyMessage);
    expect(okta.requests.length).toBe(requestsBefore);
    for (const token of tokens) expect(log).not.toContain(token);
    await stopWorker();

    await startWorker(TEST_KEY);
    const recovered = await cli.json<RunSummaryJson>(['sync', id, '--wait']);
    expect(recovered).toMatchObject({ status: 'succeeded', error: null });
    expect(recovered.counts.usersCreated).toBe(1);
    await stopWorker();
    faults += 3;
  }, 180_000);
});
