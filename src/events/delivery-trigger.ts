import pg from 'pg';
import type { Db } from '../db/database.js';
import { EndpointRepository } from '../db/endpoint.repository.js';
import { EVENTS_CHANNEL } from '../db/event.repository.js';
import type { Logger } from '../log.js';
import { type DirsyncQueue, enqueueDelivery } from '../queue/queue.js';

/** Also without a notification (one lost while Postgres restarted, a horizon held back): how often every endpoint is looked at. */
const SWEEP_MS = 5_000;

/** Notifications arriving within this window become one round of triggers. */
const DEBOUNCE_MS = 50;

/**
 * Starts deliveries when events commit: LISTENs on the events channel (a dedicated
 * connection, re-made when it drops) and asks for a delivery job per enabled endpoint, and
 * does the same every SWEEP_MS. Returns a function that stops it.
 */
export async function startDeliveryTrigger(deps: { db: Db; databaseUrl: string; queue: DirsyncQueue; log: Logger }): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  const trigger = () => {
    if (timer || stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      enqueueAll().catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'could not queue event deliveries'));
    }, DEBOUNCE_MS);
  };
  const enqueueAll = async () => {
    for (const id of await new EndpointRepository(deps.db).enabledIds()) await enqueueDelivery(deps.queue, id);
  };
  const connect = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: deps.databaseUrl });
    c.on('notification', trigger);
    c.on('error', (error) => {
      deps.log.warn({ err: error.message }, 'events listener lost its connection; reconnecting');
      c.end().catch(() => undefined);
      if (client === c) client = undefined;
      setTimeout(() => void connect().catch(() => undefined), 1_000);
    });
    try {
      await c.connect();
      await c.query(`listen ${EVENTS_CHANNEL}`);
      client = c;
      trigger();
    } catch (error) {
      deps.log.warn({ err: (error as Error).message }, 'events listener could not connect; retrying');
      await c.end().catch(() => undefined);
      setTimeout(() => void connect().catch(() => undefined), 1_000);
    }
  };
  await connect();
  const sweeper = setInterval(trigger, SWEEP_MS);
  return async () => {
    stopped = true;
    clearInterval(sweeper);
    if (timer) clearTimeout(timer);
    await client?.end().catch(() => undefined);
  };
}
