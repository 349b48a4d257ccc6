import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { type RunRequest, RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { group, user } from '../support/builders.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { MemoryIdp, type ReadObserver } from '../support/memory-idp.js';

/**
 * SPEC "Run": "nothing read later may be overwritten by a run that read earlier (a full run that
 * started before an event must not undo it)", for reads that take time: a read is asked for,
 * the IdP changes, and only then does the read reach the subject (a full read paging through a
 * large org, a targeted or incremental run reading many subjects under the rate limit). Each
 * case was found by test/integration/interleavings.property.test.ts and shrunk by hand: the IdP
 * change, applied by the run that read it, was undone by a run whose read of that subject came
 * before the change but started after the other read was asked for, while reads were ordered
 * by when they began. Reads are now ordered by their intervals (src/runs/read-stamps.ts).
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true' });
});
afterAll(async () => dropDb());

/** A promise and its resolver. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** A run held at one point of its read: `reached` resolves when it is there, `release` lets it go on. */
interface Held {
  reached: Promise<void>;
  release: () => void;
  done: Promise<RunSummary>;
}

async function setup() {
  const slug = uniqueSlug('window');
  await new TenantRepository(db).create(slug, slug);
  const { integration } = await new IntegrationService(db, config).create({
    tenant: slug,
    provider: 'okta',
    baseUrl: 'http://127.0.0.1:9',
    token: 'unused',
    verify: false,
  });
  const idp = new MemoryIdp();
  const begin = async (request: RunRequest, observer?: ReadObserver): Promise<RunSummary> => {
    const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false, request);
    const outcome = await reconcile({ db, config, log: silentLog, connectorFor: () => idp.connector(observer) }, run.id);
    if (outcome.kind !== 'finished') throw new Error(`run ${run.id}: ${JSON.stringify(outcome)}`);
    return outcome.run;
  };
  /** Starts a run held once, before its read captures the IdP or right after. */
  const held = (request: RunRequest, at: 'beforeCapture' | 'captured'): Held => {
    const reached = gate();
    const released = gate();
    let once = false;
    const hold = async () => {
      if (once) return;
      once = true;
      reached.open();
      await released.wait;
    };
    const done = begin(request, at === 'beforeCapture' ? { beforeCapture: hold } : { captured: hold });
    return { reached: reached.wait, release: released.open, done };
  };
  const full = () => begin({ mode: 'full', lane: 'full' });
  const account = async (externalId: string) => (await new DirectoryRepository(db).accountsOf(integration.id, [externalId])).get(externalId);
  const members = async (groupId: string) =>
    (await new DirectoryRepository(db).membershipPairs(integration.id, { by: 'group', externalIds: [groupId] })).map((p) => p.user).sort();
  return { idp, begin, held, full, account, members };
}

describe('a read that reaches a subject after an IdP change is never overwritten by a read that reached it before', () => {
  it('an incremental run reading its subjects after a suspension is not undone by a full run that started later but read the user before it', async () => {
    const { idp, held, full, account } = await setup();
    idp.put(user('x'));
    expect((await full()).status).toBe('succeeded');

    // The feed names x (renamed); the incremental run reads the feed, then its targeted read of x is slow.
    idp.put(user('x', { displayName: 'X Renamed' }));
    idp.changed({ userIds: ['x'] });
    const incremental = held({ mode: 'incremental', lane: 'quick' }, 'beforeCapture');
    await incremental.reached;

    // A full run starts and reads x active (renamed), then applies later.
    const fullRun = held({ mode: 'full', lane: 'full' }, 'captured');
    await fullRun.reached;

    // x is suspended; the incremental run's read of x reaches it after that, and applies it.
    idp.put(user('x', { displayName: 'X Renamed', active: false }));
    idp.changed({ userIds: ['x'] });
    incremental.release();
    expect(await incremental.done).toMatchObject({ status: 'succeeded', mode: 'incremental', counts: { usersDeprovisioned: 1 } });
    expect((await account('x'))?.active).toBe(false);

    // The full run read x before the suspension (it started before the event): it must not undo it.
    fullRun.release();
    expect((await fullRun.done).status).toBe('succeeded');
    expect((await account('x'))?.active).toBe(false);
  });

  it('a targeted run that read a user before a suspension does not reactivate it over a full run that read it after', async () => {
    const { idp, held, full, account } = await setup();
    idp.put(user('x'));
    expect((await full()).status).toBe('succeeded');

    // A full run is asked to read; its read reaches x only after the suspension below.
    const fullRun = held({ mode: 'full', lane: 'full' }, 'beforeCapture');
    await fullRun.reached;
    // A targeted run reads x active, then applies late.
    const targeted = held({ mode: 'targeted', lane: 'quick', subjects: { userIds: ['x'] } }, 'captured');
    await targeted.reached;

    idp.put(user('x', { active: false }));
    fullRun.release();
    expect(await fullRun.done).toMatchObject({ status: 'succeeded', counts: { usersDeprovisioned: 1 } });
    expect((await account('x'))?.active).toBe(false);

    targeted.release();
    expect((await targeted.done).status).toBe('succeeded');
    expect((await account('x'))?.active).toBe(false);
  });

  it('a targeted run that read a group before a member joined does not remove the membership a full run read after', async () => {
    const { idp, held, full, members } = await setup();
    idp.put(user('a'));
    idp.put(user('u'));
    idp.putGroup(group('g'), ['a']);
    expect((await full()).status).toBe('succeeded');

    const fullRun = held({ mode: 'full', lane: 'full' }, 'beforeCapture');
    await fullRun.reached;
    const targeted = held({ mode: 'targeted', lane: 'quick', subjects: { groupIds: ['g'] } }, 'captured');
    await targeted.reached;

    idp.members.get('g')!.add('u');
    fullRun.release();
    expect(await fullRun.done).toMatchObject({ status: 'succeeded', counts: { membershipsAdded: 1 } });
    expect(await members('g')).toEqual(['a', 'u']);

    targeted.release();
    expect((await targeted.done).status).toBe('succeeded');
    expect(await members('g')).toEqual(['a', 'u']);
  });
});
