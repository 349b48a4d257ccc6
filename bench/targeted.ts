/**
 * `npm run bench:targeted` (also `npm run bench -- --suite targeted`): targeted and incremental
 * runs (issue 18, "Performance") at a workload size, against the bench's fake Okta with a
 * per-request latency and Okta's per-minute rate limits (bench/okta-limits.ts), through
 * `dirsync server` and `dirsync worker` in child processes and real Postgres and Redis:
 *
 * 1. event-to-applied latency: a user is deactivated in the fake Okta (logged there), its event
 *    hook delivery is POSTed to the receiver, and Postgres is polled until the account is no
 *    longer active; quiet, and again while a full run of the whole scope is in flight;
 * 2. `dirsync sync <id> --user LOGIN --wait` for a new hire (the CLI's wall time, and the run's
 *    own queued-to-finished time);
 * 3. incremental runs (`auto`): requests with nothing changed, after a run's worth of churn (`--churn-share`, per bucket) and after 1% at once;
 * 4. the rate-limit budget of a schedule, computed from the measured per-change costs.
 *
 *   npm run bench:targeted [-- --workload w100k --latency-ms 100 --events 20 --sets 3 --hires 3 --rounds 3]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { createDb, ensureDatabase, migrateToLatest } from '../src/db/database.js';
import { RunRepository, type RunSummary } from '../src/db/run.repository.js';
import { TenantRepository } from '../src/db/tenant.repository.js';
import { oktaEventHookDelivery } from '../src/demo/okta-event-hook.js';
import { IntegrationService } from '../src/integrations/integration.service.js';
import { createQueue } from '../src/queue/queue.js';
import { createRedis } from '../src/queue/redis.js';
import { type RunWish, requestRun } from '../src/runs/trigger.js';
import { OKTA_ONE_APP_LIMITS, type BucketName } from './okta-limits.js';
import { WORKLOADS, userId } from './workload.js';

const { values } = parseArgs({
  options: {
    workload: { type: 'string', default: 'w100k' },
    'latency-ms': { type: 'string', default: '100' },
    events: { type: 'string', default: '20' },
    sets: { type: 'string', default: '3' },
    hires: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    'churn-limits': { type: 'string', default: 'none' },
    // The budget's run: 1% of the users an hour, a run every 3 minutes, is 0.05% a run.
    'churn-share': { type: 'string', default: '0.0005' },
  },
});
const NAME = values.workload!;
const chosen = WORKLOADS[NAME];
if (!chosen) throw new Error(`--workload must be one of ${Object.keys(WORKLOADS).join(', ')}`);
const SIZE = chosen;
const LATENCY_MS = Number(values['latency-ms']);
const EVENTS = Number(values.events);
const SETS = Number(values.sets);
const HIRES = Number(values.hires);
const ROUNDS = Number(values.rounds);
const CHURN_SHARE = Number(values['churn-share']);
if (!(CHURN_SHARE > 0 && CHURN_SHARE <= 1)) throw new Error('--churn-share must be a fraction in (0, 1], e.g. 0.0005');
const pct = (share: number) => `${+(share * 100).toFixed(3)}%`;
const dist = path.resolve('dist-bench/bench');

const admin = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const dbUrl = new URL(admin.toString());
dbUrl.pathname = `/dirsync_bench_targeted_${randomBytes(3).toString('hex')}`;
const env = {
  ...process.env,
  DATABASE_URL: dbUrl.toString(),
  DIRSYNC_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  DIRSYNC_ALLOW_HTTP: 'true',
  DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true',
  DIRSYNC_QUEUE: `bench-targeted-${randomBytes(3).toString('hex')}`,
  // Below Linux's ephemeral range (32768-60999): an outgoing connection never holds it (CI once found 33164 taken).
  PORT: String(20_000 + Math.floor(Math.random() * 12_000)),
  LOG_LEVEL: 'warn',
};

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

type Buckets = Record<BucketName, number>;
interface FakeStats {
  requests: number;
  used: Buckets;
  refused: Buckets;
  logged: number;
}
const minus = (a: Buckets, b: Buckets): Buckets => Object.fromEntries(Object.keys(a).map((k) => [k, a[k as BucketName] - b[k as BucketName]])) as Buckets;
const showBuckets = (b: Buckets) =>
  Object.entries(b)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none';

async function main(): Promise<void> {
  const config = loadConfig(env, '');
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl);
  const migrated = await migrateToLatest(db);
  if (migrated.error) throw migrated.error;
  const runs = new RunRepository(db);
  const children: ChildProcess[] = [];
  const redis = createRedis(config.redisUrl, 'client');
  const queue = createQueue(config.queueName, redis);

  // The fake starts fast and unlimited for the initial load, which is not what is measured.
  const fake = spawn(process.execPath, [path.join(dist, 'okta-server.js'), String(SIZE.users), String(SIZE.groups), String(SIZE.memberships)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(fake);
  const url = await new Promise<string>((resolve) => fake.stdout!.once('data', (d) => resolve(String(d).trim())));
  const control = async <T = Record<string, unknown>>(p: string): Promise<T> => (await (await fetch(`${url}/_bench/${p}`, { method: p === 'stats' ? 'GET' : 'POST' })).json()) as T;
  const stats = () => control<FakeStats>('stats');
  const realistic = (limits: 'okta' | 'none') => control(`config?latencyMs=${LATENCY_MS}&limits=${limits}`);

  try {
    await new TenantRepository(db).create('bench', 'bench');
    const { integration, issued } = await new IntegrationService(db, config).create({ tenant: 'bench', provider: 'okta', baseUrl: url, token: 'bench-token', oktaAppId: '0oaBench', threshold: '100' });
    if (!('webhookSecret' in issued)) throw new Error('an okta integration is issued a webhook secret');
    const hookUrl = `http://127.0.0.1:${env.PORT}/webhooks/${integration.id}`;
    for (const command of ['server', 'worker']) children.push(spawn(process.execPath, [path.resolve('bin/dirsync.js'), command], { env, stdio: ['ignore', 'ignore', 'inherit'] }));
    for (let i = 0; !(await fetch(`http://127.0.0.1:${env.PORT}/healthz`).then((r) => r.ok, () => false)); i++) {
      if (i > 300) throw new Error('dirsync server did not come up');
      await sleep(100);
    }

    const deps = { db, config, queue };
    const runToEnd = async (wish: RunWish): Promise<RunSummary> => {
      const { run } = await requestRun(deps, integration.id, 'manual', { wish });
      return waitRun(run.id);
    };
    const waitRun = async (id: string): Promise<RunSummary> => {
      for (;;) {
        const run = (await runs.find(id))!;
        if (!['queued', 'running'].includes(run.status)) return run;
        await sleep(50);
      }
    };
    const activeOf = async (externalId: string) =>
      (await db.selectFrom('accounts').select('active').where('integration_id', '=', integration.id).where('external_id', '=', externalId).executeTakeFirst())?.active;

    log(`initial full run (${SIZE.users} users; no latency, no limits: not measured)`);
    let t = performance.now();
    const initial = await runToEnd({ kind: 'full' });
    if (initial.status !== 'succeeded') throw new Error(`initial run ${initial.status}: ${initial.error}`);
    log(`initial full run: ${secs(performance.now() - t)}, ${initial.stats?.requests} requests`);

    await realistic('okta');
    let nextUser = 1;
    /** One event: deactivate a user in Okta, deliver its event hook, wait until Postgres shows it. */
    const oneEvent = async (): Promise<{ ms: number; runId: string }> => {
      const id = userId((nextUser += 7919) % SIZE.users);
      if ((await activeOf(id)) !== true) return oneEvent();
      const { event } = await control<{ event: { uuid: string; eventType: string; target: { id: string; type: string }[] } }>(`deactivate?id=${id}`);
      const started = performance.now();
      const res = await fetch(hookUrl, { method: 'POST', headers: { authorization: issued.webhookSecret, 'content-type': 'application/json' }, body: JSON.stringify(oktaEventHookDelivery([event])) });
      const answer = (await res.json()) as { outcome?: string; runId?: string };
      if (res.status !== 200 || answer.outcome !== 'triggered') throw new Error(`delivery answered ${res.status} ${JSON.stringify(answer)}`);
      while ((await activeOf(id)) === true) {
        if (performance.now() - started > 600_000) throw new Error(`event for ${id} not applied in 10 minutes`);
        await sleep(10);
      }
      return { ms: performance.now() - started, runId: answer.runId! };
    };
    /** What the runs behind a set of events spent: queue wait, read and total, medians. */
    const breakdown = async (runIds: string[]) => {
      const list = (await Promise.all([...new Set(runIds)].map((id) => waitRun(id)))).filter((r) => r.startedAt);
      return {
        runs: list.length,
        waitMs: median(list.map((r) => Date.parse(r.startedAt!) - Date.parse(r.queuedAt))),
        readMs: median(list.map((r) => r.stats?.readMs ?? NaN)),
        totalMs: median(list.map((r) => r.stats?.totalMs ?? NaN)),
        requests: median(list.map((r) => r.stats?.requests ?? NaN)),
        pacedMs: Math.max(...list.map((r) => r.stats?.pacedMs ?? 0)),
        modes: [...new Set(list.map((r) => `${r.mode}/${r.status}`))].join(' '),
      };
    };
    const eventSet = async () => {
      const before = await stats();
      const times: number[] = [];
      const ids: string[] = [];
      for (let i = 0; i < EVENTS; i++) {
        const { ms, runId } = await oneEvent();
        times.push(ms);
        ids.push(runId);
        await sleep(100);
      }
      const after = await stats();
      return { times, p50: percentile(times, 50), p95: percentile(times, 95), max: Math.max(...times), refused: minus(after.refused, before.refused), ...(await breakdown(ids)) };
    };

    log(`quiet events: ${SETS} sets of ${EVENTS}`);
    const quiet: Awaited<ReturnType<typeof eventSet>>[] = [];
    for (let s = 0; s < SETS; s++) {
      quiet.push(await eventSet());
      log(`  set ${s + 1}: p50 ${secs(quiet.at(-1)!.p50)}, p95 ${secs(quiet.at(-1)!.p95)} (${JSON.stringify({ ...quiet.at(-1), times: undefined })})`);
    }

    log(`sync --user: ${HIRES} per round x ${ROUNDS}`);
    const hires: { cliMs: number; runMs: number; requests: number; runId: string }[] = [];
    // What any CLI command costs before it does anything: start-up, config, a Postgres query.
    const cliFloor: number[] = [];
    for (let i = 0; i < HIRES * ROUNDS; i++) {
      const floorStarted = performance.now();
      await cli(['runs', integration.id, '--limit', '1', '--json']);
      cliFloor.push(performance.now() - floorStarted);
      const hire = await control<{ id: string; login: string }>('hire');
      const started = performance.now();
      const out = await cli(['sync', integration.id, '--user', hire.login, '--wait', '--json']);
      const cliMs = performance.now() - started;
      const run = JSON.parse(out) as RunSummary;
      if (run.status !== 'succeeded' || (await activeOf(hire.id)) !== true) throw new Error(`sync --user ${hire.login}: ${run.status} ${run.error}`);
      hires.push({ cliMs, runMs: Date.parse(run.finishedAt!) - Date.parse(run.queuedAt), requests: run.stats?.requests ?? NaN, runId: run.id });
      log(`  ${hire.login}: CLI ${secs(cliMs)}, run queued->finished ${secs(hires.at(-1)!.runMs)}, ${run.stats?.requests} requests`);
    }

    // The first incremental reads everything logged since the initial full run (the events and hires above).
    log('incremental runs');
    const measured = async (label: string) => {
      const before = await stats();
      const started = performance.now();
      const run = await runToEnd({ kind: 'auto' });
      const wallMs = performance.now() - started;
      const after = await stats();
      if (run.status !== 'succeeded') throw new Error(`${label}: ${run.status} ${run.error}`);
      const result = { label, mode: run.mode, wallMs, requests: run.stats?.requests ?? NaN, used: minus(after.used, before.used), refused: minus(after.refused, before.refused), counts: run.counts, warnings: run.warnings.map((w) => String((w as { message?: string }).message ?? JSON.stringify(w)).slice(0, 160)) };
      log(`  ${label}: ${result.mode}, ${secs(wallMs)}, ${result.requests} requests (${showBuckets(result.used)}; refused ${showBuckets(result.refused)}) counts ${JSON.stringify(run.counts)}`);
      return result;
    };
    const catchUp = await measured('catch-up after the events and hires');
    const noop = [];
    for (let r = 0; r < ROUNDS; r++) noop.push(await measured(`nothing changed #${r + 1}`));
    // Changed users cost an /api/v1/apps request each: under Okta's limits (50 a minute for
    // dirsync's half) 1% of W100k takes about 20 minutes of pacing, so by default the churn rounds
    // run with the latency but without limits, counting requests per bucket all the same.
    await realistic(values['churn-limits'] === 'okta' ? 'okta' : 'none');
    type Churn = { events: number; users: number; created: number; updated: number; removed: number; moved: number };
    const churned = [];
    for (let r = 0; r < ROUNDS; r++) {
      const change = await control<Churn>(`churn?share=${CHURN_SHARE}`);
      log(`  churn #${r + 1}: ${JSON.stringify(change)}`);
      churned.push({ ...(await measured(`after ${pct(CHURN_SHARE)} churn #${r + 1}`)), change });
    }
    // 1% at once: more users than reading them one by one is worth (the run reads the whole scope).
    const burstChange = await control<Churn>('churn?share=0.01');
    log(`  churn 1% at once: ${JSON.stringify(burstChange)}`);
    const burst = { ...(await measured('after 1% churn at once')), change: burstChange };

    /**
     * Events while a full run is in flight: `limits` none, the full run reads and applies as fast
     * as the latency allows, keeping the worker's CPU busy; okta, it is paced as a real org paces
     * it (mostly waiting for the apps bucket to reset). Leaves the full run running.
     */
    const duringFull = async (limits: 'okta' | 'none') => {
      await realistic(limits);
      log(`events while a full run is in flight (limits ${limits})`);
      const { run: full } = await requestRun(deps, integration.id, 'manual', { wish: { kind: 'full' } });
      for (;;) {
        const run = (await runs.find(full.id))!;
        if (run.status === 'running' && (run.stats?.requests ?? 0) > 0) break;
        if (!['queued', 'running'].includes(run.status)) break; // a small workload: reported below as not in flight
        await sleep(50);
      }
      const sets = [];
      for (let s = 0; s < SETS; s++) {
        const set = await eventSet();
        const fullNow = (await runs.find(full.id))!;
        const phase = fullNow.stats?.reading ? 'reading' : fullNow.stats?.planned !== undefined ? 'applying' : String(fullNow.status);
        sets.push({ ...set, fullStatus: fullNow.status, fullPhase: fullNow.status === 'running' ? phase : fullNow.status, fullRequests: fullNow.stats?.requests ?? 0, fullPacedMs: fullNow.stats?.pacedMs ?? 0 });
        log(`  set ${s + 1}: p50 ${secs(set.p50)}, p95 ${secs(set.p95)}; full run ${fullNow.status} at ${fullNow.stats?.requests} requests (${JSON.stringify({ ...sets.at(-1), times: undefined })})`);
      }
      return { sets, fullId: full.id };
    };
    const unpaced = await duringFull('none');
    // The unpaced full run ends before the paced one starts (one full run at a time per integration).
    const unpacedRun = await waitRun(unpaced.fullId);
    log(`  unpaced full run: ${unpacedRun.status}, ${secs(unpacedRun.stats?.totalMs ?? NaN)}, ${unpacedRun.stats?.requests} requests`);
    const paced = await duringFull('okta');
    const busy = paced.sets;
    const stillBusy = busy.every((b) => b.fullStatus === 'running');
    const unpacedBusy = unpaced.sets.every((b) => b.fullStatus === 'running');

    // 4. Budget, by arithmetic from the measured costs.
    const perChurn = churned.map((c) => ({ users: c.change.users, apps: c.used.apps, logs: c.used.logs, users_: c.used.users }));
    const appsPerUser = median(perChurn.map((c) => c.apps / c.users));
    const usersPerUser = median(perChurn.map((c) => c.users_ / c.users));
    const eventsPerUser = median(churned.map((c) => c.change.events / c.change.users));
    const quietLogs = median(noop.map((n) => n.used.logs));
    const changingPerHour = SIZE.users / 100;
    // The longest interval whose runs stay within dirsync's half of the apps bucket (so a run is
    // not paced into the next minute) and leave a change waiting under 5 minutes in all.
    let everyMin = 4;
    while (everyMin > 1 && ((SIZE.users / 100) * appsPerUser * everyMin) / 60 > OKTA_ONE_APP_LIMITS.apps / 2) everyMin -= 1;
    const runsPerHour = 60 / everyMin;
    const perRun = changingPerHour / runsPerHour;
    // A run reads one page of up to 1,000 events, the empty page after it, and so on.
    const logsPerRun = Math.max(quietLogs, Math.ceil((perRun * eventsPerUser) / 1000) + 1);
    const appsPerMin = (changingPerHour * appsPerUser) / 60;
    const logsPerMin = logsPerRun / everyMin;
    const usersPerMin = (changingPerHour * usersPerUser) / 60;

    const m = (xs: number[]) => median(xs);
    const q = (list: readonly { p50: number; p95: number; max: number }[], k: 'p50' | 'p95' | 'max') => secs(m(list.map((x) => x[k])));
    /** All events of the sets together: p95, max, how many over the 2 s goal, and 429s Okta answered meanwhile. */
    const pooled = (list: readonly { times: number[]; refused: Buckets }[]) => {
      const all = list.flatMap((x) => x.times);
      const refused = list.reduce((n, x) => n + Object.values(x.refused).reduce((a, b) => a + b, 0), 0);
      return `all ${all.length}: p95 ${secs(percentile(all, 95))}, max ${secs(Math.max(...all))}, ${all.filter((t) => t > 2000).length} over 2 s; ${refused} requests answered 429 meanwhile`;
    };
    const lines = [
      `# dirsync benchmark: targeted and incremental runs, ${NAME} (${SIZE.users.toLocaleString('en')} users, ${SIZE.groups.toLocaleString('en')} groups, ${SIZE.memberships.toLocaleString('en')} memberships, app-scoped)`,
      '',
      `Node ${process.version}, ${os.cpus().length} cores, load before: ${loadBefore}; after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}. Fake Okta: ${LATENCY_MS} ms per request, Okta's One App limits per minute (${Object.entries(OKTA_ONE_APP_LIMITS).filter(([k]) => k !== 'other').map(([k, v]) => `${k} ${v}`).join(', ')}; dirsync paces to half). Server and worker as child processes; medians over sets.`,
      '',
      '| case | median | p95 / spread | goal | runs: queue wait / read / total (median) | requests per run |',
      '|---|---|---|---|---|---|',
      `| event to applied, quiet (${SETS} sets of ${EVENTS}) | p50 ${q(quiet, 'p50')} | p95 ${q(quiet, 'p95')} (sets ${quiet.map((x) => secs(x.p95)).join(', ')}; ${pooled(quiet)}) | p95 <= 2 s: ${m(quiet.map((x) => x.p95)) <= 2000 ? 'met' : 'MISSED'} | ${secs(m(quiet.map((x) => x.waitMs)))} / ${secs(m(quiet.map((x) => x.readMs)))} / ${secs(m(quiet.map((x) => x.totalMs)))} | ${m(quiet.map((x) => x.requests))} |`,
      `| event to applied, paced full run in flight (${SETS} sets of ${EVENTS}) | p50 ${q(busy, 'p50')} | p95 ${q(busy, 'p95')} (sets ${busy.map((x) => secs(x.p95)).join(', ')}; ${pooled(busy)}) | p95 <= 2 s: ${m(busy.map((x) => x.p95)) <= 2000 ? 'met' : 'MISSED'} | ${secs(m(busy.map((x) => x.waitMs)))} / ${secs(m(busy.map((x) => x.readMs)))} / ${secs(m(busy.map((x) => x.totalMs)))} | ${m(busy.map((x) => x.requests))} |`,
      `| event to applied, unpaced full run in flight (${SETS} sets of ${EVENTS}) | p50 ${q(unpaced.sets, 'p50')} | p95 ${q(unpaced.sets, 'p95')} (sets ${unpaced.sets.map((x) => secs(x.p95)).join(', ')}; ${pooled(unpaced.sets)}) | p95 <= 2 s: ${m(unpaced.sets.map((x) => x.p95)) <= 2000 ? 'met' : 'MISSED'} | ${secs(m(unpaced.sets.map((x) => x.waitMs)))} / ${secs(m(unpaced.sets.map((x) => x.readMs)))} / ${secs(m(unpaced.sets.map((x) => x.totalMs)))} | ${m(unpaced.sets.map((x) => x.requests))} |`,
      `| sync --user (new hire), CLI wall (${hires.length}) | ${secs(m(hires.map((h) => h.cliMs)))} | ${secs(Math.min(...hires.map((h) => h.cliMs)))}-${secs(Math.max(...hires.map((h) => h.cliMs)))} | <= 2 s: ${m(hires.map((h) => h.cliMs)) <= 2000 ? 'met' : 'MISSED'} | run queued->finished ${secs(m(hires.map((h) => h.runMs)))}; CLI floor (\`dirsync runs\`) ${secs(m(cliFloor))} | ${m(hires.map((h) => h.requests))} |`,
      `| incremental, nothing changed (${noop.length}) | ${secs(m(noop.map((n) => n.wallMs)))} | ${noop.map((n) => n.requests).join(', ')} requests | <= 3 requests: ${Math.max(...noop.map((n) => n.requests)) <= 3 ? 'met' : 'MISSED'} | mode ${[...new Set(noop.map((n) => n.mode))].join(',')} | ${m(noop.map((n) => n.requests))} (${showBuckets(noop[0]!.used)}) |`,
      `| incremental after ${pct(CHURN_SHARE)} churn (${churned.length}; limits ${values['churn-limits']}) | ${secs(m(churned.map((c) => c.wallMs)))} | ${churned.map((c) => c.requests).join(', ')} requests | O(changes) | mode ${[...new Set(churned.map((c) => c.mode))].join(',')}; ${m(churned.map((c) => c.change.users))} users changed, ${m(churned.map((c) => c.change.events))} events | ${m(churned.map((c) => c.requests))} (${showBuckets(churned[0]!.used)}) |`,
      `| incremental after 1% churn at once | ${secs(burst.wallMs)} | | at most a full read | mode ${burst.mode}; ${burst.change.users} users changed, ${burst.change.events} events; ${burst.warnings.join(' / ').slice(0, 200)} | ${burst.requests} (${showBuckets(burst.used)}) |`,
      `| incremental catching up on the events and hires | ${secs(catchUp.wallMs)} | | | mode ${catchUp.mode} | ${catchUp.requests} (${showBuckets(catchUp.used)}) |`,
      '',
      `Unpaced full run (no limits) during its events: ${unpacedBusy ? 'in flight throughout' : 'NOT in flight throughout'} (${unpaced.sets.map((b) => `${b.fullPhase} at ${b.fullRequests} requests`).join('; ')}); it took ${secs(unpacedRun.stats?.totalMs ?? NaN)} in all, ${unpacedRun.stats?.requests} requests.`,
      `Paced full run during the busy events: ${stillBusy ? 'yes, throughout' : 'NO: it ended before the last set, so those events were not all measured against it'} (${busy.map((b) => `${b.fullPhase} at ${b.fullRequests} requests`).join('; ')} after each set: a paced read stalls between requests while it waits for the apps bucket's reset).`,
      `Requests per changed user in the churn rounds: /api/v1/apps ${appsPerUser.toFixed(2)}, /api/v1/users ${usersPerUser.toFixed(2)}; System Log events per changed user ${eventsPerUser.toFixed(2)}.`,
      '',
      `Budget (arithmetic from the measured per-change costs above, not a timed run): ${SIZE.users.toLocaleString('en')} users, 1% changing per hour = ${changingPerHour} users/h; incremental runs every ${everyMin} min (a change waits at most ${everyMin} min for its run, plus the run: ${secs(m(churned.map((c) => c.wallMs)) * (perRun / m(churned.map((c) => c.change.users))))} for ${perRun.toFixed(0)} changed users at the churn rounds' rate), ${runsPerHour} runs/h.`,
      `- /api/v1/apps*: ${appsPerMin.toFixed(1)} requests/min of ${OKTA_ONE_APP_LIMITS.apps} = ${((100 * appsPerMin) / OKTA_ONE_APP_LIMITS.apps).toFixed(1)}% (goal <= 10%: ${(100 * appsPerMin) / OKTA_ONE_APP_LIMITS.apps <= 10 ? 'met' : 'MISSED'})`,
      `- /api/v1/logs: ${logsPerRun} requests per run = ${logsPerMin.toFixed(2)}/min of ${OKTA_ONE_APP_LIMITS.logs} = ${((100 * logsPerMin) / OKTA_ONE_APP_LIMITS.logs).toFixed(1)}%`,
      `- /api/v1/users*: ${usersPerMin.toFixed(1)} requests/min of ${OKTA_ONE_APP_LIMITS.users} = ${((100 * usersPerMin) / OKTA_ONE_APP_LIMITS.users).toFixed(1)}%`,
      `- plus a daily full run: ${Math.ceil(SIZE.users / 500) + Math.ceil(SIZE.groups / 200)} /api/v1/apps requests (${(((Math.ceil(SIZE.users / 500) + Math.ceil(SIZE.groups / 200)) / (24 * 60 * OKTA_ONE_APP_LIMITS.apps)) * 100).toFixed(2)}% of the day's bucket).`,
      '',
      `Churn rounds: ${JSON.stringify(churned.map((c) => ({ change: c.change, used: c.used, counts: c.counts })))}`,
      `Catch-up: ${JSON.stringify({ used: catchUp.used, counts: catchUp.counts, warnings: catchUp.warnings })}`,
    ];
    const report = lines.join('\n');
    mkdirSync('bench-results', { recursive: true });
    writeFileSync(`bench-results/targeted-${NAME}.md`, `${report}\n`);
    process.stdout.write(`${report}\n\n(written to bench-results/targeted-${NAME}.md)\n`);
  } finally {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(15_000).then(() => child.kill('SIGKILL'))]);
    }
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    redis.disconnect();
    await db.destroy();
    const cleanup = createDb(admin.toString(), { max: 1 });
    await sql.raw(`drop database if exists "${dbUrl.pathname.slice(1)}" with (force)`).execute(cleanup);
    await cleanup.destroy();
  }
}

const loadBefore = os.loadavg().map((x) => x.toFixed(1)).join(' ');

/** Runs the CLI as a user would; resolves its stdout, rejects on a non-zero exit. */
function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve('bin/dirsync.js'), ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`dirsync ${args.join(' ')} exited ${code}`))));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  // Exit even with connections still open: a benchmark that failed must not hang.
  process.exit(1);
});
