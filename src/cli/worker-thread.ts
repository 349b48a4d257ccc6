import { parentPort } from 'node:worker_threads';
import { forwardRunDurations } from '../runs/run-metrics.js';
import { THREAD_EXIT_DEADLINE_MS, type WorkerThreadMessage, serializeError, serveParts } from './serve.js';

// The worker of `dirsync start`, in a thread of its own (see serve()): it runs until the main
// thread says stop, and tells it when it is ready or why it could not start.
const port = parentPort!;
const post = (message: WorkerThreadMessage) => port.postMessage(message);
// /metrics is served by the main thread: run durations observed here are counted there.
forwardRunDurations((status, seconds) => post({ kind: 'run-duration', status, seconds }));
const stop = new Promise<string>((resolve) => port.on('message', (message) => message === 'stop' && resolve('SIGTERM')));

serveParts({ http: false, worker: true }, stop, { ready: () => post({ kind: 'ready' }) }, THREAD_EXIT_DEADLINE_MS)
  .catch((error: unknown) => post({ kind: 'failed', error: serializeError(error) }))
  .finally(() => port.close());
