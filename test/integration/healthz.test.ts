import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { recordJobTaken, recordWorkerAlive } from '../../src/queue/liveness.js';
import { createRedis } from '../../src/queue/redis.js';
import { startWorker } from '../../src/queue/worker.js';
import { createTestDatabase, silentLog, testConfig } from '../support/env.js';
import { startTestServer } from '../support/test-server.js';
import { waitFor } from '../support/wait.js';

let db: Db;
let dbUrl: string;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop: dropDb, url: dbUrl } = await createTestDatabase());
});
afterAll(async () => {
  await dropDb();
});

describe('/healthz', () => {
  it('is ok only while a worker is alive and the queue is not paused, and says why otherwise', async () => {
    const config = testConfig({ DATABASE_URL: dbUrl });
    const server = await startTestServer(db, config);
    await server.queue.waitUntilReady();
    const health = async () => {
      const response = await server.app.inject({ method: 'GET', url: '/healthz' });
      return { code: response.statusCode, body: response.json() as { status: string; reasons: string[]; postgres: string; redis: string; workers: number } };
    };
    try {
      // No worker has ever started on this queue: nothing would run.
      expect(await health()).toMatchObject({ code: 503, body: { status: 'degraded', reasons: ['no worker seen in the last 30 s'], postgres: 'ok', redis: 'ok', workers: 0 } });

      const worker = await startWorker({ db, config, log: silentLog, queue: server.queue });
      try {
        expect(await health()).toEqual({ code: 200, body: { status: 'ok', reasons: [], postgres: 'ok', redis: 'ok', workers: 1, queuePaused: false } });

        // Paused on bull-board: workers live, nothing runs.
        await server.queue.pause();
        expect(await health()).toMatchObject({ code: 503, body: { status: 'degraded', reasons: ['queue paused'] } });
        await server.queue.resume();
        expect((await health()).code).toBe(200);
      } finally {
        await worker.close();
      }
      // A worker that stopped cleanly is forgotten at once.
      await waitFor('the stopped worker to be forgotten', async () => (await health()).code === 503, { timeoutMs: 2_000 });
      expect(await health()).toMatchObject({ code: 503, body: { reasons: ['no worker seen in the last 30 s'] } });
    } finally {
      await server.close();
    }
  });

  it('is degraded when jobs wait with none active and none taken for a minute, though a worker says it is alive', async () => {
    const config = testConfig({ DATABASE_URL: dbUrl });
    const server = await startTestServer(db, config);
    const redis = createRedis(config.redisUrl, 'client');
    await server.queue.waitUntilReady();
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    try {
      await recordWorkerAlive(redis, server.queue, randomUUID());
      await recordJobTaken(redis, server.queue, Date.now() - 120_000);
      expect((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      await server.queue.add('schedule-tick', { integrationId: randomUUID() });
      const response = await server.app.inject({ method: 'GET', url: '/healthz' });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ status: 'degraded', reasons: ['1 job(s) waiting and none taken for over 60 s'] });
      // Taken a moment ago: a worker is keeping up.
      await recordJobTaken(redis, server.queue);
      expect((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      redis.disconnect();
      await server.close();
    }
  });
});
