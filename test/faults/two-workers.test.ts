import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness } from '../support/cli.js';
import { testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { checkConvergence } from './support/convergence.js';
import { ROUNDS, recordFigures, scenarioSeed } from './support/figures.js';
import { DirsyncProcess } from '../support/processes.js';

/**
 * Two worker processes on one Redis, several integrations, triggers fired in bursts: at most
 * one run per integration at any moment, and every integration still gets its runs.
 */

const APP = '0oaTwo';
const INTEGRATIONS = 4;
const cli = new CliHarness();
const config = testConfig({ DATABASE_URL: cli.dbUrl, DIRSYNC_QUEUE: cli.queue });
let okta: FakeOkta;
let db: Db;
const integrationIds: string[] = [];
const workers: DirsyncProcess[] = [];

beforeAll(async () => {
  okta = await new FakeOkta().start();
  okta.maxPageSize = 50;
  okta.responseDelayMs = 10;
  const app = okta.addApp(APP);
  for (let i = 0; i < 400; i++) app.users.add(okta.addUser(`w${i}@two.test`).id);
  await cli.createDatabase();
  for (let i = 0; i < INTEGRATIONS; i++) {
    await cli.json(['tenant', 'create', `two${i}`]);
    const created = await cli.json<{ id: string }>([
      'integration', 'create', '--tenant', `two${i}`, '--provider', 'okta', '--base-url', okta.url, '--token', okta.token,
      '--okta-app-id', APP, '--threshold', '100',
    ]);
    integrationIds.push(created.id);
  }
  db = createDb(cli.dbUrl);
  workers.push(await new DirsyncProcess(cli).start(), await new DirsyncProcess(cli).start());
}, 120_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  await db?.destroy();
  await okta?.stop();
  await cli.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two workers on one Redis', () => {
  it(`never run one integration twice at once in a lane, and run every integration (${ROUNDS} waves)`, async () => {
    let maxRunning = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await db
          .selectFrom('runs')
          .select(['integration_id', db.fn.countAll<string>().as('n')])
          .where('status', '=', 'running')
          // One at a time per lane: a targeted or incremental run goes beside a full one (issue #18).
          .groupBy(['integration_id', 'lane'])
          .execute();
        for (const r of rows) maxRunning = Math.max(maxRunning, Number(r.n));
        await sleep(25);
      }
    })();

    let triggers = 0;
    const burstWindows: { start: Date; end: Date }[] = [];
    const seeds = scenarioSeed('two workers');
    try {
      for (let wave = 0; wave < ROUNDS; wave++) {
        const rnd = seeds.round(wave);
        for (const id of [...okta.users.keys()].slice(0, 40)) okta.updateUser(id, { profile: { title: `wave ${wave} ${rnd.int(0, 1e6)}` } });
        // Bursts of triggers for every integration, all at once.
        const burstStart = new Date();
        const bursts = integrationIds.flatMap((id) => Array.from({ length: 3 }, () => cli.run(['sync', id])));
        const results = await Promise.all(bursts);
        const burstEnd = new Date();
        triggers += results.length;
        for (const r of results) expect(r.code, r.stderr).toBe(0);
        burstWindows.push({ start: burstStart, end: burstEnd });
        // Wait for every integration's queue of runs to drain.
        const deadline = Date.now() + 120_000;
        for (;;) {
          const open = await db.selectFrom('runs').select('id').where('status', 'in', ['queued', 'running']).execute();
          if (open.length === 0) break;
          if (Date.now() > deadline) throw new Error(`runs still open: ${open.length}\n${workers.map((w) => w.log.slice(-2000)).join('\n---\n')}`);
          await sleep(100);
        }
      }
    } finally {
      sampling = false;
      await sampler;
    }

    const runs = await db.selectFrom('runs').select(['integration_id', 'lane', 'status', 'started_at', 'finished_at']).orderBy('started_at').execute();
    // A burst coalesces: one run, plus at most one follow-up, per integration and wave, except
    // where a run of that integration finished while the burst's triggers were still arriving
    // (a trigger after a run ended rightly starts a new one; CLI start-up spreads a burst out
    // on a loaded machine).
    const finishedDuringBursts = runs.filter((r) => r.finished_at && burstWindows.some((w) => r.finished_at! >= w.start && r.finished_at! <= w.end)).length;
    // Per lane: a burst of plain syncs asks for a full run until one has left a feed position,
    // then for incremental ones (the quick lane), so a wave may use both lanes.
    expect(runs.length).toBeLessThanOrEqual(INTEGRATIONS * ROUNDS * 2 * 2 + finishedDuringBursts);
    for (const id of integrationIds) {
      const mine = runs.filter((r) => r.integration_id === id);
      expect(mine.filter((r) => r.status === 'succeeded').length).toBeGreaterThanOrEqual(ROUNDS);
      for (const lane of ['full', 'quick']) {
        const inLane = mine.filter((r) => r.lane === lane);
        for (let i = 1; i < inLane.length; i++) expect(inLane[i]!.started_at!.getTime()).toBeGreaterThanOrEqual(inLane[i - 1]!.finished_at!.getTime());
      }
      const report = await checkConvergence(db, config, id);
      expect(report.mismatches).toEqual([]);
      expect(report.changeLogErrors).toEqual([]);
    }
    expect(maxRunning).toBe(1);
    const started = workers.map((w) => (w.log.match(/"run started"/g) ?? []).length);
    recordFigures({
      scenario: 'two workers on one Redis, bursts of triggers for 4 integrations',
      rounds: ROUNDS,
      faults: triggers,
      runs: runs.length,
      changesLost: 0,
      wrongfulDeprovisions: 0,
      note: `seed ${seeds.seed}; ${triggers} triggers became ${runs.length} runs; runs started per worker: ${started.join(' / ')}; at most ${maxRunning} run per integration and lane at once`,
    });
  }, 300_000);
});
