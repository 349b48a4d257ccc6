import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness, type RunSummaryJson } from '../support/cli.js';
import { testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { checkConvergence } from './support/convergence.js';
import { ROUNDS, random, recordFigures } from './support/figures.js';
import { populateOktaOrg } from './support/org.js';
import { DirsyncProcess } from '../support/processes.js';

/**
 * `dirsync worker` is killed with SIGKILL at random points of a large run, during the reads
 * and during the apply, and started again. The run it held is found abandoned, the next run
 * converges, nothing is duplicated, and never do two runs of one integration run at once.
 */

const APP = '0oaKill';
const USERS = 3_000;
const cli = new CliHarness();
const config = testConfig({ DATABASE_URL: cli.dbUrl, DIRSYNC_QUEUE: cli.queue });
let okta: FakeOkta;
let db: Db;
let integrationId: string;
let worker: DirsyncProcess;

beforeAll(async () => {
  okta = await new FakeOkta().start();
  // Pages of 200 and a little latency: a run reads for seconds, long enough to be killed in.
  okta.maxPageSize = 200;
  okta.responseDelayMs = 5;
  populateOktaOrg(okta, { appId: APP, users: USERS, groups: 30, domain: 'kill.test', memberEvery: 6, assignGroup: (j) => j % 3 !== 0 });
  expect((await cli.run(['migrate'])).code).toBe(0);
  await cli.json(['tenant', 'create', 'kill']);
  const created = await cli.json<{ id: string }>([
    'integration', 'create', '--tenant', 'kill', '--provider', 'okta', '--base-url', okta.url, '--token', okta.token,
    '--okta-app-id', APP, '--threshold', '100',
  ]);
  integrationId = created.id;
  db = createDb(cli.dbUrl);
  worker = await new DirsyncProcess(cli).start();
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await db?.destroy();
  await okta?.stop();
  await cli.stop();
});

/** In-scope users who are active. */
function activeInScope(): Set<string> {
  const scope = okta.appUserScopes(APP);
  return new Set([...scope.keys()].filter((id) => !['SUSPENDED', 'DEPROVISIONED'].includes(okta.users.get(id)!.status)));
}

/** Enough change that the apply takes a while too: a fifth of the users renamed, hires, suspensions, moves. */
function churn(rnd: ReturnType<typeof random>): void {
  const ids = [...okta.users.keys()];
  const pick = () => ids[rnd.int(0, ids.length - 1)]!;
  const app = okta.apps.get(APP)!;
  for (let i = 0; i < USERS / 5; i++) okta.updateUser(pick(), { profile: { title: `Title ${rnd.int(0, 1e6)}` } });
  for (let i = 0; i < 20; i++) okta.updateUser(pick(), { status: 'SUSPENDED' });
  for (let i = 0; i < 50; i++) app.users.add(okta.addUser(`hire${rnd.int(0, 1e9)}@kill.test`).id);
  const groups = [...okta.groups.keys()];
  for (let i = 0; i < 300; i++) okta.addMember(groups[rnd.int(0, groups.length - 1)]!, pick());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runRow(id: string) {
  return db.selectFrom('runs').select(['status', 'stats', 'error', 'started_at']).where('id', '=', id).executeTakeFirstOrThrow();
}

describe('worker killed with SIGKILL mid-run', () => {
  it(`converges after every kill, with no duplicates and never two runs at once (${ROUNDS} rounds)`, async () => {
    // Sampled throughout: how many runs of the integration are running at the same moment.
    let maxRunning = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const running = await db.selectFrom('runs').select(db.fn.countAll<string>().as('n')).where('integration_id', '=', integrationId).where('status', '=', 'running').executeTakeFirstOrThrow();
        maxRunning = Math.max(maxRunning, Number(running.n));
        await sleep(50);
      }
    })();

    const phases = { reading: 0, applying: 0, finished: 0 };
    let lost = 0;
    let wrongful = 0;
    let runs = 0;
    // Where the last clean run spent its time, to aim odd rounds' kills at the apply.
    let estimate = { readMs: 800, applyMs: 800 };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const rnd = random();
        const since = new Date();
        const before = activeInScope();
        if (round > 0) churn(rnd);
        const kept = new Set([...before].filter((id) => activeInScope().has(id)));

        const queued = await cli.run(['sync', integrationId]);
        const runId = queued.stdout.trim();
        expect(runId, queued.stderr).toMatch(/^[0-9a-f-]{36}$/);
        while ((await runRow(runId)).status === 'queued') await sleep(10);
        const aimAtApply = round % 2 === 1;
        const delay = aimAtApply ? estimate.readMs + rnd.int(0, estimate.applyMs) : rnd.int(0, estimate.readMs);
        await sleep(delay);
        const atKill = await runRow(runId);
        await worker.kill();
        runs += 1;
        const stats = (atKill.stats ?? {}) as Record<string, number>;
        if (atKill.status !== 'running') phases.finished += 1;
        else if (stats.reading) phases.reading += 1;
        else phases.applying += 1;

        worker = await new DirsyncProcess(cli).start();
        // The run the dead worker held is abandoned once its heartbeat is stale; the next run converges.
        const next = await cli.json<RunSummaryJson>(['sync', integrationId, '--wait']);
        runs += 1;
        expect(next.status, `seed ${rnd.seed}: ${next.error}`).toBe('succeeded');
        const killed = await runRow(runId);
        if (atKill.status === 'running') expect(killed).toMatchObject({ status: 'failed', error: expect.stringMatching(/abandoned|worker/i) });
        const nextStats = (await runRow(next.id)).stats as Record<string, number> | null;
        if (nextStats?.readMs) estimate = { readMs: nextStats.readMs, applyMs: Math.max(50, nextStats.applyMs ?? 0) };

        const report = await checkConvergence(db, config, integrationId, kept, since);
        expect(report.mismatches, `seed ${rnd.seed}`).toEqual([]);
        expect(report.wrongfulDeprovisions).toEqual([]);
        expect(report.changeLogErrors).toEqual([]);
        expect(report.pendingChanges).toBe(0);
        lost += report.mismatches.length;
        wrongful += report.wrongfulDeprovisions.length;
      }
    } finally {
      sampling = false;
      await sampler;
      recordFigures({
        scenario: 'worker SIGKILLed mid-run, then restarted',
        rounds: ROUNDS,
        faults: ROUNDS,
        kills: ROUNDS,
        runs,
        changesLost: lost,
        wrongfulDeprovisions: wrongful,
        note: `killed while reading ${phases.reading}, while applying ${phases.applying}, after the run ended ${phases.finished} (last clean run: read ${estimate.readMs} ms, apply ${estimate.applyMs} ms); at most ${maxRunning} run(s) at once`,
      });
    }
    expect(maxRunning).toBeLessThanOrEqual(1);
    // No global user twice, no access twice: the convergence check compares counts too.
    const dupes = await db
      .selectFrom('accounts')
      .select(['external_id', db.fn.countAll<string>().as('n')])
      .where('integration_id', '=', integrationId)
      .groupBy('external_id')
      .having(db.fn.countAll(), '>', 1)
      .execute();
    expect(dupes).toEqual([]);
  }, 600_000);
});
