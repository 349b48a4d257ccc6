import type { FastifyInstance } from 'fastify';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { buildServer } from '../../src/http/server.js';
import { type DirsyncQueue, createQueue } from '../../src/queue/queue.js';
import { createRedis } from '../../src/queue/redis.js';
import { silentLog } from './env.js';

/** The HTTP server in-process (for app.inject), on the test's database and a queue of its own. */
export async function startTestServer(db: Db, config: Config): Promise<{ app: FastifyInstance; queue: DirsyncQueue; close: () => Promise<void> }> {
  const redis = createRedis(config.redisUrl, 'client');
  const queue = createQueue(config.queueName, redis);
  const app = buildServer({ db, config, redis, queue, log: silentLog });
  await app.ready();
  const close = async () => {
    await app.close();
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
  };
  return { app, queue, close };
}
