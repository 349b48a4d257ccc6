import { Worker } from 'node:worker_threads';
import { ConfigError, loadConfig, requireEncryptionKey } from '../config.js';
import { DecryptionError } from '../crypto.js';
import { UserError } from '../errors.js';
import { createDb } from '../db/database.js';
import { buildServer } from '../http/server.js';
import { createLogger } from '../log.js';
import { createQueue } from '../queue/queue.js';
import { createRedis } from '../queue/redis.js';
import { startWorker, stopWorker } from '../queue/worker.js';
import { runDuration } from '../runs/run-metrics.js';

/**
 * SPEC: on SIGTERM a process exits within 10 s. Past these (from the signal; the worker thread's
 * earlier than its process's) whatever has not closed is left and the process exits with 1.
 */
const EXIT_DEADLINE_MS = 9_500;
export const THREAD_EXIT_DEADLINE_MS = 8_500;

/**
 * Long-running mode: runs until SIGTERM/SIGINT, then stops within 10 s: no new jobs, active runs
 * get a few seconds to finish and are then handed to the next worker (stopWorker). `start`
 * (both parts) runs the worker in a worker thread of this process: a run plans over every
 * account of an integration synchronously (seconds at 100k), and on the HTTP server's event
 * loop that would hold every webhook and SCIM request waiting as long.
 */
export async function serve(parts: { http: boolean; worker: boolean }): Promise<void> {
  if (parts.http && parts.worker) return serveWithWorkerThread();
  return serveParts(parts, signalled());
}

/** Resolves with the signal's name on the first SIGTERM or SIGINT. */
function signalled(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** The HTTP server here, the worker in a thread started first (it recovers runs and schedules), stopped last. */
async function serveWithWorkerThread(): Promise<void> {
  const thread = new Worker(new URL('./worker-thread.js', import.meta.url));
  const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    thread.on('message', (message: WorkerThreadMessage) => {
      if (message.kind === 'ready') resolve();
      else if (message.kind === 'failed') reject(reviveError(message.error));
      else runDuration.observe({ status: message.status }, message.seconds);
    });
    thread.once('error', reject);
    void exited.then((code) => reject(new Error(`the worker stopped while starting (exit code ${code})`)));
  });
  // A worker thread that dies later takes the process down with it, for the orchestrator to restart.
  const stop = Promise.race([signalled(), exited.then((code) => `the worker thread exited (code ${code})`)]);
  await serveParts({ http: true, worker: false }, stop, {
    afterHttp: async () => {
      if (thread.threadId !== -1) thread.postMessage('stop');
      const late = setTimeout(() => void thread.terminate(), THREAD_EXIT_DEADLINE_MS + 500);
      const code = await exited;
      clearTimeout(late);
      if (code !== 0) process.exitCode = 1;
    },
  });
}

/** What the worker thread tells the main thread. */
export type WorkerThreadMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly error: SerializedError }
  | { readonly kind: 'run-duration'; readonly status: string; readonly seconds: number };

type SerializedError = { name: string; message: string } & Record<string, unknown>;

/** An error as it can cross to another thread, with the fields that say what failed (code, port, host). */
export function serializeError(error: unknown): SerializedError {
  const e = error as Record<string, unknown> & { name?: string; message?: string };
  const fields: Record<string, unknown> = {};
  for (const key of ['code', 'port', 'hostname', 'address', 'syscall']) if (e?.[key] !== undefined) fields[key] = e[key];
  return { name: e?.name ?? 'Error', message: e?.message ?? String(error), ...fields };
}

function reviveError(error: SerializedError): Error {
  const { name, message, ...fields } = error;
  const revived = name === 'UserError' ? new UserError(message) : name === 'ConfigError' ? new ConfigError(message) : name === 'DecryptionError' ? new DecryptionError(message) : new Error(message);
  return Object.assign(revived, fields);
}

/**
 * The parts of a long-running process, until `stop` resolves (with what stopped it).
 * `ready` is called once everything listens; `afterHttp` runs once the HTTP server is closed.
 */
export async function serveParts(
  parts: { http: boolean; worker: boolean },
  stop: Promise<string>,
  hooks: { ready?: () => void; afterHttp?: () => Promise<void> } = {},
  /** How long after `stop` the process (or thread) may take before it exits regardless. */
  deadlineMs = EXIT_DEADLINE_MS,
): Promise<void> {
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
      [server && 'http server closed', () => server?.close()],
      [undefined, () => hooks.afterHttp?.()],
      [worker && 'worker closed', () => worker && stopWorker(worker, log)],
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
      await server.listen({ port: config.port, host: config.host });
      log.info({ host: config.host, port: config.port }, 'http server listening');
    }
  } catch (error) {
    // Open connections would keep the process alive after its error is reported; closing them
    // is not a connection problem worth a log line after that one sentence.
    redis.removeAllListeners('error').on('error', () => {});
    await close(() => {}).catch(() => {});
    throw error;
  }
  hooks.ready?.();
  const signal = await stop;
  // A stuck close (a query that never returns) must not keep the process past the deadline.
  const deadline = setTimeout(() => {
    log.error({ deadlineMs }, 'did not stop in time; exiting anyway (an interrupted run is taken over by the next worker)');
    process.exit(1);
  }, deadlineMs).unref();
  log.info({ signal }, 'shutting down: no new jobs; active runs get a few seconds, then the next worker takes them over');
  await close((what) => log.info(what)).finally(() => clearTimeout(deadline));
  log.info('stopped');
}
