import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { resolveWish } from '../../src/runs/trigger.js';
import { PATCH_OP_SCHEMA, USER_SCHEMA } from '../../src/scim/scim.schemas.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { startTestServer } from '../support/test-server.js';

/**
 * Push plus pull (issue #18): an Okta integration created with `--scim` also takes SCIM pushes,
 * and each push asks for a targeted read of what it names through Okta's API: the push brings
 * latency, the API the truth. Okta sends no push when it suspends a user; the System Log's
 * incremental run catches that.
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let okta: FakeOkta;
let app: FastifyInstance;
let close: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
  okta = await new FakeOkta().start();
  ({ app, close } = await startTestServer(db, config));
});
afterAll(async () => {
  await close();
  await okta.stop();
  await dropDb();
});

/** Runs the queued run of a lane in this process, as the worker would. */
async function runQueued(integrationId: string): Promise<RunSummary> {
  const queued = await db.selectFrom('runs').select('id').where('integration_id', '=', integrationId).where('status', '=', 'queued').orderBy('queued_at').executeTakeFirstOrThrow();
  const outcome = await reconcile({ db, config, log: silentLog, connectorSettings: { retry: { retries: 1, minTimeoutMs: 5, maxTimeoutMs: 10 } } }, queued.id);
  if (outcome.kind !== 'finished') throw new Error(JSON.stringify(outcome));
  return outcome.run;
}

describe('an Okta integration that also takes SCIM pushes (--scim)', () => {
  it('reads each push back through the API, and catches the suspension Okta never pushes', async () => {
    const domain = `${uniqueSlug('pp')}.test`;
    const appId = `0oa${uniqueSlug('').replace(/-/g, '')}`;
    okta.addApp(appId);
    const ann = okta.addUser(`ann@${domain}`, { profile: { displayName: 'Ann (Okta)' } });
    okta.assignUser(appId, ann.id);
    const slug = uniqueSlug('pp');
    await new TenantRepository(db).create(slug, slug);
    const service = new IntegrationService(db, config);
    const { integration, issued } = await service.create({ tenant: slug, provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: appId, scim: true });
    expect(issued).toMatchObject({ webhookSecret: expect.any(String), scimToken: expect.any(String) });
    expect(service.view(integration)).toMatchObject({ scimBaseUrl: expect.stringContaining(`/scim/v2/${integration.id}`), webhookUrl: expect.any(String) });
    const token = (issued as { scimToken: string }).scimToken;
    const scim = (method: 'POST' | 'PATCH', url: string, payload: unknown) =>
      app.inject({ method, url: `/scim/v2/${integration.id}${url}`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' }, payload: JSON.stringify(payload) });

    // The first run is full (no feed position yet).
    const first = await new RunRepository(db).trigger(integration.id, 'manual', false, await resolveWish(db, integration, { kind: 'auto' }));
    expect(first.run.mode).toBe('full');
    expect((await runQueued(integration.id)).counts).toMatchObject({ usersCreated: 1 });

    // Okta provisions a new hire: assigned in Okta, then pushed (Okta's SCIM client's create shape).
    const bea = okta.addUser(`bea@${domain}`, { profile: { firstName: 'Bea', lastName: 'Stone', displayName: 'Bea (Okta)' } });
    okta.assignUser(appId, bea.id);
    const pushed = await scim('POST', '/Users', {
      schemas: [USER_SCHEMA],
      userName: `bea@${domain}`,
      name: { givenName: 'Pushed', familyName: 'Name' },
      emails: [{ primary: true, value: `bea@${domain}`, type: 'work' }],
      displayName: 'Pushed Name',
      active: true,
    });
    expect(pushed.statusCode).toBe(201);
    const run = await runQueued(integration.id);
    expect(run).toMatchObject({ trigger: 'scim', mode: 'targeted', status: 'succeeded', counts: { usersCreated: 1 } });
    // The account holds what Okta's API says, not what was pushed.
    const accounts = await new DirectoryRepository(db).accountsOf(integration.id);
    expect(accounts.get(bea.id)).toMatchObject({ userName: `bea@${domain}`, givenName: 'Bea', familyName: 'Stone', active: true });

    // A push that says "inactive" while Okta says active changes nothing: the API is the truth.
    const pushedBea = pushed.json() as { id: string };
    expect((await scim('PATCH', `/Users/${pushedBea.id}`, { schemas: [PATCH_OP_SCHEMA], Operations: [{ op: 'replace', value: { active: false } }] })).statusCode).toBe(200);
    expect((await runQueued(integration.id)).counts).toMatchObject({ usersDeprovisioned: 0 });
    expect((await new DirectoryRepository(db).accountsOf(integration.id)).get(bea.id)?.active).toBe(true);

    // Okta suspends Ann and pushes nothing; the scheduled incremental run reads the System Log.
    okta.updateUser(ann.id, { status: 'SUSPENDED' });
    const scheduled = await new RunRepository(db).trigger(integration.id, 'schedule', false, await resolveWish(db, integration, { kind: 'auto' }));
    expect(scheduled.run.mode).toBe('incremental');
    expect((await runQueued(integration.id)).counts).toMatchObject({ usersDeprovisioned: 1 });
    expect((await new DirectoryRepository(db).accountsOf(integration.id)).get(ann.id)?.active).toBe(false);

    // --no-scim stops taking pushes.
    await service.update(integration.id, { scim: false });
    expect((await scim('POST', '/Users', { schemas: [USER_SCHEMA], userName: `cid@${domain}` })).statusCode).toBe(404);
  });
});
