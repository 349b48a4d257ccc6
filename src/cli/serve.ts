import { loadConfig, requireEncryptionKey } from '../config.js';
import { createDb } from '../db/database.js';
import { buildServer } from '../http/server.js';
import { createLogger } from '../log.js';
import { createQueue } from '../queue/queue.js';
import { createRedis } from '../queue/redis.js';
import { startWorker } from '../queue/worker.js';

/** Long-running mode: runs until SIGTERM/SIGINT, then finishes active runs and exits. */
export async function serve(parts: { http: boolean; worker: boolean }): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  if (parts.worker) requireEncryptionKey(config);
  const db = createDb(config.databaseUrl);
  // Fails fast while Redis is away, so a webhook is answered 503 at once rather than hanging.
  const redis = createRedis(config.redisUrl, 'client');
  redis.on('error', (error) => log.warn({ err: error.message }, 'redis connection problem; retrying'));
  const queue = createQueue(config.queueName, redis);
  // The connection's listener above logs these; without one BullMQ prints each with its stack.
  queue.on('error', () => {});
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  let server: ReturnType<typeof buildServer> | undefined;
  // Closes everything even if one part fails (the first failure is thrown at the end), so a
  // failed start-up exits instead of hanging on what stayed open.
  const close = async (step: (what: string) => void) => {
    const closers: [string | undefined, () => unknown][] = [
      ['http server closed', () => server?.close()],
      ['worker closed', () => worker?.close()],
      ['queue closed', () => queue.close()],
      [undefined, () => redis.disconnect()],
      [undefined, () => db.destroy()],
    ];
    let failure: unknown;
    for (const [done, closeOne] of closers) {
      try {
        await closeOne();
        if (done) step(done);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure) throw failure;
  };
  try {
    worker = parts.worker ? await startWorker({ db, config, log, queue }) : undefined;
    server = parts.http ? buildServer({ db, config, redis, queue, log }) : undefined;
    if (server) {
      await server.listen({ port: config.port, host: '0.0.0.0' });
      log.info({ port: config.port }, 'http server listening');
    }
  } catch (error) {
    // Open connections would keep the process alive after its error is reported; closing them
    // is not a connection problem worth a log line after that one sentence.
    redis.removeAllListeners('error').on('error', () => {});
    await close(() => {}).catch(() => {});
    throw error;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down: finishing active runs');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await close((what) => log.info(what));
  log.info('stopped');
}
