/**
 * SCIM endpoint figures on a scim integration holding many pushed users (default 100,000):
 *
 *  1. Seeding: the users (and groups with members) are written straight into scim_users,
 *     scim_groups and scim_group_members with INSERT ... SELECT, then one `dirsync sync <id>
 *     --wait` brings the tenant to them; its wall time and phases are reported.
 *  2. Steady load: an Okta-like mix of SCIM requests (userName lookups, POST new users after a
 *     lookup, PUT profile updates, PATCH active false/true, group member PATCH adds) from a
 *     fixed number of keep-alive connections for a fixed time, against `dirsync start` (HTTP
 *     server and worker in one process, as deployed on one machine). Per-type and overall
 *     latency percentiles, sustained writes/s, and whether the runs kept up: how long after the
 *     load stops until no run is queued or running, and whether the tenant then matches what
 *     was pushed (`dirsync users` count, and active flags compared in SQL).
 *  3. "Provision Users": Okta's lookup-then-POST for N new users (default 10,000), several in
 *     parallel, into a fresh integration: wall time, errors, and when the tenant held them all.
 *
 * Everything runs on this machine (Postgres, Redis, dirsync and this load generator share
 * the cores); each phase is repeated --runs times and medians are reported. Writes
 * bench-results/scim.md and bench-results/scim.json; prints a table and one JSON line.
 *
 * With --mode split, `dirsync server` and `dirsync worker` run as two processes instead (writes
 * bench-results/scim-split.*), which tells a run blocking the server's event loop from the
 * two processes merely sharing the cores. --cpu-prof writes V8 CPU profiles of the dirsync
 * process(es) to bench-results/cpu-prof/ when they exit; --keep keeps the database.
 *
 *   npm run bench:scim [-- --users 100000 --groups 100 --seconds 60 --concurrency 8 --runs 3
 *                          --provision 10000 --provision-concurrency 8 --mode start|split
 *                          --cpu-prof --keep]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cpus, loadavg } from 'node:os';
import { parseArgs, promisify } from 'node:util';
import { sql } from 'kysely';
import { Agent, request } from 'undici';
import { loadConfig } from '../src/config.js';
import { type Db, createDb, ensureDatabase, migrateToLatest } from '../src/db/database.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
    provision: { type: 'string', default: '10000' },
    'provision-concurrency': { type: 'string', default: '8' },
    'cpu-prof': { type: 'boolean', default: false },
    // start: `dirsync start` (server and worker in one process, the default); split: `dirsync
    // server` and `dirsync worker` in two processes, to tell event-loop blocking from CPU.
    mode: { type: 'string', default: 'start' },
    keep: { type: 'boolean', default: false },
  },
});
const USERS = Number(values.users);
const GROUPS = Number(values.groups);
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const RUNS = Number(values.runs);
const PROVISION = Number(values.provision);
const PROVISION_CONCURRENCY = Number(values['provision-concurrency']);
const MODE = values.mode!;
if (MODE !== 'start' && MODE !== 'split') throw new Error('--mode must be start or split');

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
base.pathname = `/dirsync_bench_scim_${randomBytes(3).toString('hex')}`;
// Below Linux's ephemeral range (32768-60999): an outgoing connection never holds it.
const PORT = 20_000 + Math.floor(Math.random() * 12_000);
const env = {
  ...process.env,
  DATABASE_URL: base.toString(),
  DIRSYNC_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  DIRSYNC_QUEUE: `bench-scim-${randomBytes(3).toString('hex')}`,
  PORT: String(PORT),
  LOG_LEVEL: 'warn',
};
const BIN = path.resolve('bin/dirsync.js');
const PROBE = path.resolve('bench-results/scim-probe.jsonl');
const log = (line: string) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// Small helpers

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
const median = (xs: readonly number[]) => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const execFileP = promisify(execFile);

/** Runs the real CLI (bin/dirsync.js) against the bench database and parses its --json output. */
async function cli<T>(...args: string[]): Promise<T> {
  const { stdout } = await execFileP(process.execPath, [BIN, ...args, '--json'], { env, maxBuffer: 1 << 30 });
  return JSON.parse(stdout) as T;
}

interface ScimIntegration {
  id: string;
  scimBaseUrl: string;
  scimToken: string;
}

async function createScimIntegration(tenant: string): Promise<ScimIntegration> {
  await cli('tenant', 'create', tenant);
  const out = await cli<Record<string, unknown>>('integration', 'create', '--tenant', tenant, '--provider', 'scim');
  const integration = (out.integration ?? out) as { id: string };
  const scimBaseUrl = (out.scimBaseUrl ?? (integration as Record<string, unknown>).scimBaseUrl) as string;
  const scimToken = (out.scimToken ?? (integration as Record<string, unknown>).scimToken) as string;
  if (!integration.id || !scimBaseUrl || !scimToken) throw new Error(`integration create printed no id/scimBaseUrl/scimToken: ${JSON.stringify(out)}`);
  return { id: integration.id, scimBaseUrl, scimToken };
}

function userBody(userName: string, n: number, extra: { title?: string; active?: boolean } = {}) {
  return {
    schemas: [USER_SCHEMA, ENTERPRISE],
    userName,
    externalId: `00u${n.toString(36).padStart(17, '0')}`,
    name: { givenName: `Given${n}`, familyName: `Family${n}` },
    displayName: `Given${n} Family${n}`,
    emails: [{ primary: true, value: userName, type: 'work' }],
    locale: 'en-US',
    title: extra.title ?? 'Engineer',
    active: extra.active ?? true,
    [ENTERPRISE]: { department: `Dept${n % 40}`, employeeNumber: String(n) },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP: one keep-alive pool per phase; every response is read to the end and timed.

type Kind = 'lookup' | 'create' | 'update' | 'activePatch' | 'groupPatch';
const KINDS: readonly Kind[] = ['lookup', 'create', 'update', 'activePatch', 'groupPatch'];
const WRITES = new Set<Kind>(['create', 'update', 'activePatch', 'groupPatch']);
const LABEL: Record<Kind, string> = {
  lookup: 'GET /Users?filter=userName eq',
  create: 'POST /Users',
  update: 'PUT /Users/{id}',
  activePatch: 'PATCH /Users/{id} active',
  groupPatch: 'PATCH /Groups/{id} add member',
};

class Recorder {
  readonly times = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
  readonly errors: Array<{ kind: Kind; status: number; body: string }> = [];
  errorCount = 0;
}

class Client {
  readonly agent: Agent;
  constructor(
    private readonly target: ScimIntegration,
    connections: number,
    private readonly rec: Recorder,
  ) {
    this.agent = new Agent({ connections, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  async call(kind: Kind, method: 'GET' | 'POST' | 'PUT' | 'PATCH', pathAndQuery: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
    const t0 = performance.now();
    const res = await request(`${this.target.scimBaseUrl}${pathAndQuery}`, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.target.scimToken}`, accept: 'application/scim+json', ...(body !== undefined && { 'content-type': 'application/scim+json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    this.rec.times.get(kind)!.push(performance.now() - t0);
    if (res.statusCode >= 300) {
      this.rec.errorCount++;
      if (this.rec.errors.length < 20) this.rec.errors.push({ kind, status: res.statusCode, body: text.slice(0, 300) });
      return { status: res.statusCode, json: undefined };
    }
    return { status: res.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }

  lookup(userName: string) {
    return this.call('lookup', 'GET', `/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}&startIndex=1&count=100`);
  }
}

// ---------------------------------------------------------------------------------------------
// Database: seeding and observing

async function seed(db: Db, integrationId: string, users: number, groups: number): Promise<number> {
  const t0 = performance.now();
  await sql`
    insert into scim_users (integration_id, user_name, external_id, active, resource)
    select ${integrationId}::uuid, 'user' || i || '@bench.test', '00u' || lpad(i::text, 17, '0'), true,
      jsonb_build_object(
        'schemas', jsonb_build_array(${USER_SCHEMA}::text, ${ENTERPRISE}::text),
        'userName', 'user' || i || '@bench.test',
        'externalId', '00u' || lpad(i::text, 17, '0'),
        'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
        'displayName', 'Given' || i || ' Family' || i,
        'emails', jsonb_build_array(jsonb_build_object('primary', true, 'value', 'user' || i || '@bench.test', 'type', 'work')),
        'locale', 'en-US',
        'title', 'Engineer',
        ${ENTERPRISE}::text, jsonb_build_object('department', 'Dept' || (i % 40), 'employeeNumber', i::text))
    from generate_series(1, ${users}::int) i
  `.execute(db);
  await sql`
    insert into scim_groups (integration_id, display_name, external_id, resource)
    select ${integrationId}::uuid, 'Group ' || g, '00g' || lpad(g::text, 17, '0'),
      jsonb_build_object('schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:Group'), 'displayName', 'Group ' || g, 'externalId', '00g' || lpad(g::text, 17, '0'))
    from generate_series(1, ${groups}::int) g
  `.execute(db);
  // Each user in one group (round robin): groups of users/groups members each.
  await sql`
    insert into scim_group_members (group_id, user_id)
    select g.id, u.id
    from (select id, row_number() over (order by user_name) - 1 as n from scim_users where integration_id = ${integrationId}::uuid) u
    join (select id, row_number() over (order by display_name) - 1 as n from scim_groups where integration_id = ${integrationId}::uuid) g
      on g.n = u.n % ${groups}::int
  `.execute(db);
  await sql`analyze scim_users, scim_groups, scim_group_members`.execute(db);
  return performance.now() - t0;
}

async function activeRuns(db: Db, integrationId: string): Promise<number> {
  const row = await sql<{ n: string }>`select count(*) as n from runs where integration_id = ${integrationId}::uuid and status in ('queued', 'running')`.execute(db);
  return Number(row.rows[0]!.n);
}

async function accountCount(db: Db, integrationId: string): Promise<number> {
  const row = await sql<{ n: string }>`select count(*) as n from accounts where integration_id = ${integrationId}::uuid`.execute(db);
  return Number(row.rows[0]!.n);
}

/**
 * Pushed users the tenant does not reflect: an active one without an account, or an account
 * whose active flag or userName differs from the push. (An inactive user the tenant never had
 * rightly gets no account: README "Users the IdP reports inactive and the tenant never had
 * are not created".) Also how many users the tenant should list: every pushed user that is
 * active or has an account.
 */
async function compareTenant(db: Db, integrationId: string): Promise<{ mismatched: number; expected: number }> {
  const row = await sql<{ mismatched: string; expected: string }>`
    select count(*) filter (where (a.id is null and s.active) or (a.id is not null and (a.active <> s.active or a.user_name <> s.user_name))) as mismatched,
           count(*) filter (where s.active or a.id is not null) as expected
    from scim_users s
    left join accounts a on a.integration_id = s.integration_id and a.external_id = s.id::text
    where s.integration_id = ${integrationId}::uuid
  `.execute(db);
  return { mismatched: Number(row.rows[0]!.mismatched), expected: Number(row.rows[0]!.expected) };
}

interface RunRow {
  id: string;
  status: string;
  trigger: string;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  stats: Record<string, number> | null;
  counts: Record<string, number> | null;
}

async function runsSince(db: Db, integrationId: string, since: Date): Promise<RunRow[]> {
  const rows = await sql<RunRow>`
    select id, status, trigger, queued_at, started_at, finished_at, stats, counts from runs
    where integration_id = ${integrationId}::uuid and queued_at >= ${since} order by queued_at
  `.execute(db);
  return rows.rows;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
  return performance.now() - t0;
}

// ---------------------------------------------------------------------------------------------
// Where the CPU went during a phase: the dirsync process (and its event-loop stalls, from
// bench/scim-probe.ts), this database's Postgres backends, and the whole machine (other
// suites may be running on it too).

const TICK_MS = 10; // /proc times are in clock ticks of 1/100 s on Linux

function procCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

function machineCpu(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = ticks.map(Number);
  const idle = n[3]! + n[4]!;
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) * TICK_MS, total: total * TICK_MS };
}

interface CpuMark {
  at: number;
  dirsync: number;
  postgres: Map<number, number>;
  machine: { busy: number; total: number };
}

let dirsyncPids: number[] = [];

async function postgresPids(db: Db): Promise<number[]> {
  const rows = await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database()`.execute(db);
  return rows.rows.map((r) => r.pid);
}

async function cpuMark(db: Db): Promise<CpuMark> {
  return { at: Date.now(), dirsync: dirsyncPids.reduce((n, pid) => n + procCpuMs(pid), 0), postgres: new Map((await postgresPids(db)).map((p) => [p, procCpuMs(p)])), machine: machineCpu() };
}

export interface CpuUse {
  /** Cores' worth (1.0 = one core busy all the time). */
  dirsyncCores: number;
  postgresCores: number;
  machineBusyCores: number;
  loadAvg1: number;
  /** From the probe: the worst event-loop delay of any second, the median second's p99, and seconds with a stall over 50 ms. */
  eldMaxMs: number;
  eldP99MedianMs: number;
  stalledSeconds: number;
}

async function cpuUse(db: Db, from: CpuMark): Promise<CpuUse> {
  const to = await cpuMark(db);
  const wall = to.at - from.at;
  let pg = 0;
  for (const [pid, ms] of to.postgres) pg += ms - (from.postgres.get(pid) ?? 0);
  const probe = readProbe(from.at, to.at);
  return {
    dirsyncCores: (to.dirsync - from.dirsync) / wall,
    postgresCores: pg / wall,
    machineBusyCores: ((to.machine.busy - from.machine.busy) / (to.machine.total - from.machine.total)) * cpus().length,
    loadAvg1: loadavg()[0]!,
    eldMaxMs: Math.max(0, ...probe.map((p) => p.eldMax)),
    eldP99MedianMs: median(probe.map((p) => p.eldP99)),
    stalledSeconds: probe.filter((p) => p.eldMax > 50).length,
  };
}

function readProbe(from: number, to: number): Array<{ t: number; eldP50: number; eldP99: number; eldMax: number; cpuMs: number }> {
  try {
    return readFileSync(PROBE, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { t: number; eldP50: number; eldP99: number; eldMax: number; cpuMs: number })
      .filter((p) => p.t > from && p.t <= to);
  } catch {
    return [];
  }
}

/**
 * A poor man's pg_stat_statements (which needs a server restart to load): samples this
 * database's active statements every 100 ms until stopped, and tells which statements were
 * seen running most often (each sample of a running statement is ~100 ms of it).
 */
function sampleActivity(db: Db): () => Promise<Array<{ query: string; samples: number; waits: string }>> {
  const seen = new Map<string, { samples: number; waits: Map<string, number> }>();
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const rows = await sql<{ query: string; wait: string | null }>`
        select query, wait_event_type || ':' || wait_event as wait from pg_stat_activity
        where datname = current_database() and state = 'active' and pid <> pg_backend_pid()
      `.execute(db);
      for (const r of rows.rows) {
        const key = r.query.replace(/\s+/g, ' ').replace(/\$\d+/g, '$').slice(0, 140);
        const entry = seen.get(key) ?? { samples: 0, waits: new Map() };
        entry.samples++;
        const w = r.wait ?? 'cpu';
        entry.waits.set(w, (entry.waits.get(w) ?? 0) + 1);
        seen.set(key, entry);
      }
      await sleep(100);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return [...seen.entries()]
      .sort((a, b) => b[1].samples - a[1].samples)
      .slice(0, 6)
      .map(([query, e]) => ({ query, samples: e.samples, waits: [...e.waits.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w, n]) => `${w} ${n}`).join(', ') }));
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 2: steady Okta-like load

interface Pool {
  users: Array<{ id: string; userName: string; n: number; active: boolean; busy: boolean }>;
  groups: string[];
  next: number;
}

/** Okta-like day-to-day mix, by share of operations (a create is a lookup then a POST). */
const MIX: ReadonlyArray<[Kind, number]> = [
  ['lookup', 0.3],
  ['create', 0.15],
  ['update', 0.3],
  ['activePatch', 0.15],
  ['groupPatch', 0.1],
];

function pick(): Kind {
  let r = Math.random();
  for (const [kind, share] of MIX) {
    if ((r -= share) < 0) return kind;
  }
  return 'lookup';
}

interface LoadResult {
  seconds: number;
  requests: number;
  writes: number;
  perKind: Record<Kind, { n: number; p50: number; p95: number; p99: number }>;
  overall: { p50: number; p95: number; p99: number };
  errors: number;
  errorSamples: Recorder['errors'];
  drainMs: number;
  runsDuring: number;
  runStatuses: Record<string, number>;
  runTotalMsMedian: number;
  runReadMsMedian: number;
  runApplyMsMedian: number;
  runQueueWaitMsMedian: number;
  pushedUsers: number;
  /** Pushed users that are active or have an account: what `dirsync users` should list. */
  expectedUsers: number;
  tenantUsers: number;
  mismatched: number;
  cpu: CpuUse;
  runBusyShare: number;
  pgActive: Array<{ query: string; samples: number; waits: string }>;
}

async function steadyLoad(db: Db, target: ScimIntegration, pool: Pool, round: number): Promise<LoadResult> {
  const rec = new Recorder();
  const client = new Client(target, CONCURRENCY, rec);
  const since = new Date(Date.now() - 1);
  const randomUser = () => {
    for (;;) {
      const u = pool.users[Math.floor(Math.random() * pool.users.length)]!;
      if (!u.busy) return u;
    }
  };
  let created = 0;
  const mark = await cpuMark(db);
  const stopSampling = sampleActivity(db);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const kind = pick();
        if (kind === 'lookup') {
          await client.lookup(randomUser().userName);
        } else if (kind === 'create') {
          const n = pool.next++;
          const userName = `new${round}-${n}@bench.test`;
          const found = await client.lookup(userName);
          if (found.json && found.json.totalResults === 0) {
            const res = await client.call('create', 'POST', '/Users', userBody(userName, n));
            if (res.json) {
              pool.users.push({ id: res.json.id as string, userName, n, active: true, busy: false });
              created++;
            }
          }
        } else if (kind === 'update') {
          const u = randomUser();
          u.busy = true;
          await client.call('update', 'PUT', `/Users/${u.id}`, userBody(u.userName, u.n, { title: `Title ${Math.random().toString(36).slice(2, 8)}`, active: u.active }));
          u.busy = false;
        } else if (kind === 'activePatch') {
          const u = randomUser();
          u.busy = true;
          const res = await client.call('activePatch', 'PATCH', `/Users/${u.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: !u.active } }] });
          if (res.json) u.active = !u.active;
          u.busy = false;
        } else {
          const g = pool.groups[Math.floor(Math.random() * pool.groups.length)]!;
          await client.call('groupPatch', 'PATCH', `/Groups/${g}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: randomUser().id }] }] });
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = await cpuUse(db, mark);
  const pgActive = await stopSampling();
  await client.agent.close();

  // Did the runs keep up? Wait until none is queued or running, then compare.
  const drainMs = await waitUntil(async () => (await activeRuns(db, target.id)) === 0, 600_000, 50);
  const runs = await runsSince(db, target.id, since);
  const runStatuses: Record<string, number> = {};
  for (const r of runs) runStatuses[r.status] = (runStatuses[r.status] ?? 0) + 1;
  const tenantUsers = (await cli<unknown[]>('users', '--tenant', 'bench')).length;
  const pushed = await sql<{ n: string }>`select count(*) as n from scim_users where integration_id = ${target.id}::uuid`.execute(db);
  const compared = await compareTenant(db, target.id);

  const all = KINDS.flatMap((k) => rec.times.get(k)!).sort((a, b) => a - b);
  const perKind = Object.fromEntries(
    KINDS.map((k) => {
      const t = [...rec.times.get(k)!].sort((a, b) => a - b);
      return [k, { n: t.length, p50: percentile(t, 50), p95: percentile(t, 95), p99: percentile(t, 99) }];
    }),
  ) as LoadResult['perKind'];
  const writes = KINDS.filter((k) => WRITES.has(k)).reduce((n, k) => n + rec.times.get(k)!.length, 0);
  log(`  ${all.length} requests (${writes} writes, ${created} users created) in ${seconds.toFixed(1)} s; runs drained ${(drainMs / 1000).toFixed(1)} s after`);
  return {
    seconds,
    requests: all.length,
    writes,
    perKind,
    overall: { p50: percentile(all, 50), p95: percentile(all, 95), p99: percentile(all, 99) },
    errors: rec.errorCount,
    errorSamples: rec.errors,
    drainMs,
    runsDuring: runs.length,
    runStatuses,
    runTotalMsMedian: median(runs.map((r) => r.stats?.totalMs ?? NaN)),
    runReadMsMedian: median(runs.map((r) => r.stats?.readMs ?? NaN)),
    runApplyMsMedian: median(runs.map((r) => r.stats?.applyMs ?? NaN)),
    runQueueWaitMsMedian: median(runs.map((r) => (r.started_at ? r.started_at.getTime() - r.queued_at.getTime() : NaN))),
    pushedUsers: Number(pushed.rows[0]!.n),
    tenantUsers,
    expectedUsers: compared.expected,
    mismatched: compared.mismatched,
    cpu,
    // Share of the load window in which a run of the integration was executing.
    pgActive,
    runBusyShare: runs.reduce((n, r) => n + (r.stats?.totalMs ?? 0), 0) / (seconds * 1000),
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 3: Okta "Provision Users" (lookup, then POST) of N new users into a fresh integration

interface ProvisionResult {
  wallMs: number;
  requests: number;
  errors: number;
  errorSamples: Recorder['errors'];
  postP95: number;
  lookupP95: number;
  tenantAllMs: number;
  lagAfterPushMs: number;
  tenantUsers: number;
  cpu: CpuUse;
}

async function provision(db: Db, round: number): Promise<ProvisionResult> {
  const tenant = `prov${round}`;
  const target = await createScimIntegration(tenant);
  const rec = new Recorder();
  const client = new Client(target, PROVISION_CONCURRENCY, rec);
  let next = 0;
  const mark = await cpuMark(db);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: PROVISION_CONCURRENCY }, async () => {
      for (let n = next++; n < PROVISION; n = next++) {
        const userName = `p${round}-${n}@bench.test`;
        const found = await client.lookup(userName);
        if (found.json?.totalResults === 0) await client.call('create', 'POST', '/Users', userBody(userName, n));
      }
    }),
  );
  const wallMs = performance.now() - started;
  const cpu = await cpuUse(db, mark);
  await client.agent.close();
  const lag = await waitUntil(async () => (await accountCount(db, target.id)) >= PROVISION && (await activeRuns(db, target.id)) === 0, 600_000, 50);
  const tenantAllMs = performance.now() - started;
  const tenantUsers = (await cli<unknown[]>('users', '--tenant', tenant)).length;
  const sorted = (k: Kind) => [...rec.times.get(k)!].sort((a, b) => a - b);
  log(`  provisioned ${PROVISION} in ${(wallMs / 1000).toFixed(1)} s, ${rec.errorCount} errors; tenant held all ${(tenantAllMs / 1000).toFixed(1)} s after the first request`);
  return {
    wallMs,
    requests: rec.times.get('lookup')!.length + rec.times.get('create')!.length,
    errors: rec.errorCount,
    errorSamples: rec.errors,
    postP95: percentile(sorted('create'), 95),
    lookupP95: percentile(sorted('lookup'), 95),
    tenantAllMs,
    lagAfterPushMs: lag,
    tenantUsers,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------

/** `dirsync start` (or, with --mode split, `dirsync server` and `dirsync worker`), up and answering. */
async function startDirsync(): Promise<ChildProcess[]> {
  const profDir = path.resolve('bench-results/cpu-prof');
  if (values['cpu-prof']) mkdirSync(profDir, { recursive: true });
  mkdirSync(path.dirname(PROBE), { recursive: true });
  const probe = path.resolve('dist-bench/bench/scim-probe.js');
  // The process serving HTTP writes PROBE (its event-loop stalls delay SCIM answers).
  const commands = MODE === 'start' ? [['start', PROBE]] : [['server', PROBE], ['worker', PROBE.replace('.jsonl', '-worker.jsonl')]];
  const children = commands.map(([command, probeFile]) => {
    rmSync(probeFile!, { force: true });
    const args = ['--import', probe, ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), BIN, command!];
    return spawn(process.execPath, args, { env: { ...env, DIRSYNC_BENCH_PROBE_FILE: probeFile }, stdio: ['ignore', 'ignore', 'inherit'] });
  });
  dirsyncPids = children.map((c) => c.pid!);
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${PORT}/healthz`)).ok) return children;
    } catch {
      if (i > 300 || children.some((c) => c.exitCode !== null)) throw new Error(`dirsync ${MODE} did not come up`);
    }
    await sleep(100);
  }
}

async function main(): Promise<void> {
  const config = loadConfig(env, '');
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl);
  const { error } = await migrateToLatest(db);
  if (error) throw error;
  let dirsync: ChildProcess[] = [];
  try {
    dirsync = await startDirsync();
    const target = await createScimIntegration('bench');

    // 1. Seed and the initial apply.
    log(`seeding ${USERS} users, ${GROUPS} groups (each user in one)`);
    const seedMs = await seed(db, target.id, USERS, GROUPS);
    log(`  seeded in ${(seedMs / 1000).toFixed(1)} s; initial apply (dirsync sync --wait)`);
    const t0 = performance.now();
    const initialRun = await cli<{ id: string; status: string; stats: Record<string, number>; counts: Record<string, number> }>('sync', target.id, '--wait');
    const initialWallMs = performance.now() - t0;
    if (initialRun.status !== 'succeeded') throw new Error(`initial run ${initialRun.status}: ${JSON.stringify(initialRun)}`);
    const initialUsers = await accountCount(db, target.id);
    log(`  initial apply ${(initialWallMs / 1000).toFixed(1)} s (run: read ${initialRun.stats.readMs} ms, apply ${initialRun.stats.applyMs} ms), ${initialUsers} accounts`);

    const pool: Pool = {
      users: (await sql<{ id: string; user_name: string }>`select id, user_name from scim_users where integration_id = ${target.id}::uuid`.execute(db)).rows.map((r) => ({
        id: r.id,
        userName: r.user_name,
        n: Number(/\d+/.exec(r.user_name)![0]),
        active: true,
        busy: false,
      })),
      groups: (await sql<{ id: string }>`select id from scim_groups where integration_id = ${target.id}::uuid`.execute(db)).rows.map((r) => r.id),
      next: USERS + 1,
    };

    // 2. Steady load, then 3. provisioning, each --runs times.
    const loads: LoadResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`run ${r + 1}/${RUNS}: steady Okta-like load, ${CONCURRENCY} in flight for ${SECONDS} s`);
      loads.push(await steadyLoad(db, target, pool, r));
    }
    const provisions: ProvisionResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`run ${r + 1}/${RUNS}: Provision Users, ${PROVISION} new users, ${PROVISION_CONCURRENCY} in parallel`);
      provisions.push(await provision(db, r));
    }

    // Report.
    const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 1 : 0)} ms` : '-');
    const s = (x: number) => `${(x / 1000).toFixed(1)} s`;
    const range = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))}-${f(Math.max(...xs))}`;
    const kindRows = KINDS.map((k) => {
      const n = median(loads.map((l) => l.perKind[k].n));
      const p50 = median(loads.map((l) => l.perKind[k].p50));
      const p95 = median(loads.map((l) => l.perKind[k].p95));
      const p99 = median(loads.map((l) => l.perKind[k].p99));
      return `| ${LABEL[k]} | ${Math.round(n)} | ${ms(p50)} | ${ms(p95)} | ${ms(p99)} |`;
    });
    const overallP95 = median(loads.map((l) => l.overall.p95));
    const writesPerSec = median(loads.map((l) => l.writes / l.seconds));
    const drainMs = median(loads.map((l) => l.drainMs));
    const consistent = loads.every((l) => l.tenantUsers === l.expectedUsers && l.mismatched === 0);
    const loadErrors = loads.reduce((n, l) => n + l.errors, 0);
    const provErrors = provisions.reduce((n, p) => n + p.errors, 0);
    const provOk = provErrors === 0 && provisions.every((p) => p.tenantUsers === PROVISION);
    const cpuLine = (label: string, list: Array<{ cpu: CpuUse }>, requests: number[], wallS: number[]) => {
      const m = (f: (c: CpuUse) => number) => median(list.map((x) => f(x.cpu)));
      const perRequest = median(list.map((x, i) => (x.cpu.dirsyncCores * wallS[i]! * 1000) / requests[i]!));
      const perRequestPg = median(list.map((x, i) => (x.cpu.postgresCores * wallS[i]! * 1000) / requests[i]!));
      return (
        `- CPU ${label} (cores busy, of ${cpus().length}): dirsync ${m((c) => c.dirsyncCores).toFixed(2)} (${ms(perRequest)} per request), ` +
        `Postgres backends of this database ${m((c) => c.postgresCores).toFixed(2)} (${ms(perRequestPg)} per request), whole machine ${m((c) => c.machineBusyCores).toFixed(2)} ` +
        `(load average ${m((c) => c.loadAvg1).toFixed(1)}: other work on the machine competes); dirsync event loop: worst stall ${ms(m((c) => c.eldMaxMs))}, ` +
        `${m((c) => c.stalledSeconds)} seconds with a stall over 50 ms, median second's p99 ${ms(m((c) => c.eldP99MedianMs))}`
      );
    };
    const lines = [
      `# dirsync SCIM benchmark: ${USERS.toLocaleString('en')} pushed users, ${GROUPS} groups`,
      '',
      `Node ${process.version}, ${RUNS} runs per phase, medians (min-max); ${MODE === 'start' ? '`dirsync start` (server + worker in one process)' : '`dirsync server` and `dirsync worker` (two processes)'}, Postgres, Redis and the load generator on the same ${cpus().length}-core machine.`,
      '',
      `Seeding (INSERT ... SELECT into scim_*): ${s(seedMs)}. Initial apply (\`dirsync sync --wait\`): ${s(initialWallMs)} wall; run read ${s(initialRun.stats.readMs ?? NaN)}, plan+apply ${s(initialRun.stats.applyMs ?? NaN)}; ${initialUsers.toLocaleString('en')} accounts.`,
      '',
      `## Steady Okta-like load: ${CONCURRENCY} in flight, ${SECONDS} s`,
      '',
      '| request | count | p50 | p95 | p99 |',
      '|---|---|---|---|---|',
      ...kindRows,
      `| **all** | ${Math.round(median(loads.map((l) => l.requests)))} | ${ms(median(loads.map((l) => l.overall.p50)))} | **${ms(overallP95)}** | ${ms(median(loads.map((l) => l.overall.p99)))} |`,
      '',
      `- overall p95: ${ms(overallP95)} (${range(loads.map((l) => l.overall.p95), ms)}); target <= 50 ms: **${overallP95 <= 50 ? 'met' : 'missed'}**`,
      `- sustained writes: ${writesPerSec.toFixed(0)}/s (${range(loads.map((l) => l.writes / l.seconds), (x) => x.toFixed(0))}); target >= 200/s: **${writesPerSec >= 200 ? 'met' : 'missed'}**`,
      `- errors: ${loadErrors}${loadErrors ? ` (${JSON.stringify(loads.flatMap((l) => l.errorSamples).slice(0, 3))})` : ''}`,
      `- runs during a load: ${median(loads.map((l) => l.runsDuring))} (statuses ${JSON.stringify(loads.map((l) => l.runStatuses))}); a run: total ${ms(median(loads.map((l) => l.runTotalMsMedian)))}, read ${ms(median(loads.map((l) => l.runReadMsMedian)))}, plan+apply ${ms(median(loads.map((l) => l.runApplyMsMedian)))}, queued before starting ${ms(median(loads.map((l) => l.runQueueWaitMsMedian)))}`,
      cpuLine('during the load', loads, loads.map((l) => l.requests), loads.map((l) => l.seconds)),
      `- time runs of the integration spent executing, over the load window (a run may go on past the window): ${(median(loads.map((l) => l.runBusyShare)) * 100).toFixed(0)}%`,
      `- statements seen running in Postgres (samples every 100 ms, last load run): ${loads.at(-1)!.pgActive.map((q) => `${q.samples}x [${q.waits}] ${q.query}`).join(' | ') || 'none'}`,
      `- kept up: no run queued or running ${s(drainMs)} (${range(loads.map((l) => l.drainMs), s)}) after the load stopped; \`dirsync users\` lists every pushed user that is active or was ever applied, and every account's active/userName is as pushed: **${consistent ? 'yes' : 'no'}** (${loads.map((l) => `${l.tenantUsers} listed / ${l.expectedUsers} expected of ${l.pushedUsers} pushed, ${l.mismatched} differing`).join('; ')})`,
      '',
      `## Provision Users: ${PROVISION.toLocaleString('en')} new users, lookup then POST, ${PROVISION_CONCURRENCY} in parallel, fresh integration`,
      '',
      '| measure | median | min-max |',
      '|---|---|---|',
      `| push wall time | ${s(median(provisions.map((p) => p.wallMs)))} | ${range(provisions.map((p) => p.wallMs), s)} |`,
      `| requests/s | ${median(provisions.map((p) => p.requests / (p.wallMs / 1000))).toFixed(0)} | |`,
      `| POST p95 / lookup p95 | ${ms(median(provisions.map((p) => p.postP95)))} / ${ms(median(provisions.map((p) => p.lookupP95)))} | |`,
      `| tenant holds all users, from first request | ${s(median(provisions.map((p) => p.tenantAllMs)))} | ${range(provisions.map((p) => p.tenantAllMs), s)} |`,
      `| ... after the last push answered | ${s(median(provisions.map((p) => p.lagAfterPushMs)))} | ${range(provisions.map((p) => p.lagAfterPushMs), s)} |`,
      `| errors | ${provErrors} | |`,
      '',
      cpuLine('during the push', provisions, provisions.map((p) => p.requests), provisions.map((p) => p.wallMs / 1000)),
      '',
      `Provisioning finished without error and the tenant holds every user: **${provOk ? 'yes' : 'no'}**${provErrors ? ` (${JSON.stringify(provisions.flatMap((p) => p.errorSamples).slice(0, 3))})` : ''}`,
    ];
    const report = lines.join('\n');
    const summary = {
      bench: 'scim',
      mode: MODE,
      node: process.version,
      users: USERS,
      groups: GROUPS,
      concurrency: CONCURRENCY,
      seconds: SECONDS,
      runs: RUNS,
      seedMs: Math.round(seedMs),
      initialApplyMs: Math.round(initialWallMs),
      initialRunStats: initialRun.stats,
      p95Ms: +overallP95.toFixed(1),
      perKindP95Ms: Object.fromEntries(KINDS.map((k) => [k, +median(loads.map((l) => l.perKind[k].p95)).toFixed(1)])),
      writesPerSec: Math.round(writesPerSec),
      loadErrors,
      drainMs: Math.round(drainMs),
      consistent,
      provision: {
        users: PROVISION,
        concurrency: PROVISION_CONCURRENCY,
        wallMs: Math.round(median(provisions.map((p) => p.wallMs))),
        errors: provErrors,
        tenantAllMs: Math.round(median(provisions.map((p) => p.tenantAllMs))),
        lagAfterPushMs: Math.round(median(provisions.map((p) => p.lagAfterPushMs))),
      },
      targets: { p95: overallP95 <= 50, writesPerSec: writesPerSec >= 200, provision: provOk },
      detail: { loads, provisions },
    };
    mkdirSync('bench-results', { recursive: true });
    const out = `bench-results/scim${MODE === 'split' ? '-split' : ''}`;
    writeFileSync(`${out}.md`, `${report}\n`);
    writeFileSync(`${out}.json`, `${JSON.stringify(summary, null, 2)}\n`);
    const { detail: _detail, ...line } = summary;
    process.stdout.write(`${report}\n\n(written to ${out}.md and ${out}.json)\n${JSON.stringify(line)}\n`);
  } finally {
    for (const child of dirsync) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await db.destroy();
    if (!values.keep) {
      const admin = new URL(base.toString());
      admin.pathname = '/postgres';
      const cleanup = createDb(admin.toString(), { max: 1 });
      await sql.raw(`drop database if exists "${base.pathname.slice(1)}" with (force)`).execute(cleanup);
      await cleanup.destroy();
    } else {
      log(`kept database ${base.pathname.slice(1)}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  // Exit even with connections still open: a benchmark that failed must not hang.
  process.exit(1);
});
