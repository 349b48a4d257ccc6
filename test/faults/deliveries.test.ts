import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness } from '../support/cli.js';
import { DirsyncProcess } from '../support/processes.js';
import { ROUNDS, recordFigures, scenarioSeed } from './support/figures.js';
import { PrivateRedis } from './support/redis-server.js';

/**
 * Event deliveries under faults (issue 15): while a `dirsync worker` delivers a burst of
 * events to a host app's endpoint, the worker is SIGKILLed, Redis restarts empty, and the
 * receiver answers 500 for a while. Every event must arrive (verified with `standardwebhooks`),
 * first arrivals in cursor order; duplicates are allowed (at least once) but each carries the
 * same `webhook-id` and body.
 */

const EVENTS = 300;
const redis = new PrivateRedis();
const cli = new CliHarness();
let db: Db;
let server: Server;
let tenantId: string;
let runId: string;
let integrationId: string;
let secret: string;
let failing = false;
const arrivals: Array<{ id: string; body: string }> = [];
let worker: DirsyncProcess | undefined;
const env = () => ({ REDIS_URL: redis.url });

beforeAll(async () => {
  await redis.start();
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      if (failing) return void res.writeHead(500).end('down for maintenance');
      const event = new Webhook(secret).verify(body, req.headers as Record<string, string>) as { id: string };
      arrivals.push({ id: event.id, body });
      // A receiver that takes a few ms: the burst lasts long enough to be interrupted.
      setTimeout(() => res.writeHead(204).end(), 3);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'faults'], env());
  integrationId = (await cli.json<{ id: string }>(['integration', 'create', '--tenant', 'faults', '--provider', 'scim'], env())).id;
  const endpoint = await cli.json<{ id: string; secret: string }>(
    ['endpoint', 'create', '--url', `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, '--tenant', 'faults'],
    env(),
  );
  secret = endpoint.secret;
  db = createDb(cli.dbUrl);
  tenantId = (await db.selectFrom('tenants').select('id').where('slug', '=', 'faults').executeTakeFirstOrThrow()).id;
  runId = (await db.insertInto('runs').values({ id: crypto.randomUUID(), integration_id: integrationId, trigger: 'manual', status: 'succeeded' }).returning('id').executeTakeFirstOrThrow()).id;
}, 120_000);

afterAll(async () => {
  await worker?.kill();
  await db?.destroy();
  await new Promise((resolve) => server?.close(resolve));
  await cli.stop();
  await redis.destroy();
});

/** A burst of applied changes, as one run's batch would commit them. */
async function burst(round: number): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
    select ${runId}::uuid, ${tenantId}::uuid, ${integrationId}::uuid, 'user.created', 'r' || ${round} || '-' || i, 'r' || ${round} || '-' || i,
      jsonb_build_object('of', jsonb_build_object('account', jsonb_build_object('userName', 'r' || ${round} || '-' || i || '@faults.test'))), 'applied'
    from generate_series(1, ${EVENTS}) i
    returning id`.execute(db);
  return rows.map((r) => String(r.id));
}

async function until(what: string, probe: () => boolean, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${new Set(arrivals.map((a) => a.id)).size} distinct events arrived)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('event deliveries under faults', () => {
  it('deliver every event, first arrivals in order, through a SIGKILLed worker, Redis restarted empty and a failing receiver', async () => {
    const seeds = scenarioSeed('event deliveries');
    let kills = 0;
    let restarts = 0;
    let outages = 0;
    let lost = 0;
    let duplicates = 0;
    let produced = 0;
    worker = await new DirsyncProcess(cli, 'worker', env()).start();
    for (let round = 0; round < ROUNDS; round++) {
      const rng = seeds.round(round);
      arrivals.length = 0;
      const ids = await burst(round);
      produced += ids.length;
      const distinct = () => new Set(arrivals.map((a) => a.id)).size;

      // SIGKILL the worker part-way through the burst, then start a new one.
      const killAt = rng.int(20, EVENTS / 3);
      await until(`${killAt} arrivals before the kill`, () => distinct() >= killAt);
      await worker.kill();
      kills++;
      expect(distinct(), seeds.label(round)).toBeLessThan(EVENTS);
      worker = await new DirsyncProcess(cli, 'worker', env()).start();

      // Redis restarts empty part-way through what is left.
      const restartAt = rng.int(distinct() + 10, Math.floor((2 * EVENTS) / 3));
      await until(`${restartAt} arrivals before the Redis restart`, () => distinct() >= restartAt);
      await redis.restart(rng.int(100, 1_000));
      restarts++;

      // The receiver fails for a while: deliveries back off and resume.
      failing = true;
      outages++;
      await new Promise((r) => setTimeout(r, rng.int(200, 1_500)));
      failing = false;

      await until('every event to arrive', () => distinct() >= EVENTS, 120_000);
      const first = [...new Map(arrivals.map((a) => [a.id, a])).keys()];
      lost += ids.filter((id) => !first.includes(id)).length;
      expect(first, seeds.label(round)).toEqual(ids);
      duplicates += arrivals.length - first.length;
      // A duplicate is the same message: the same id carries the same body.
      const bodies = new Map<string, string>();
      for (const a of arrivals) {
        expect(bodies.get(a.id) ?? a.body, seeds.label(round)).toBe(a.body);
        bodies.set(a.id, a.body);
      }
    }
    const note = `seed ${seeds.seed}; ${produced} events produced, ${produced - lost} delivered, ${lost} lost, ${duplicates} delivered twice (at least once, same webhook-id and body)`;
    console.log(`[faults] event deliveries: ${note}`);
    recordFigures({
      scenario: 'event deliveries: worker SIGKILLed mid-delivery, Redis restarted empty, receiver failing',
      rounds: ROUNDS,
      faults: kills + restarts + outages,
      kills,
      runs: 0,
      changesLost: lost,
      wrongfulDeprovisions: 0,
      note,
    });
    expect(lost).toBe(0);
  }, 600_000);
});
