import { Migrator } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import type { Config } from '../../src/config.js';
import { withFingerprint } from '../../src/connectors/scim/scim.mapping.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { ScimRepository } from '../../src/db/scim.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { readUserBody } from '../../src/scim/scim.resource.js';
import { USER_SCHEMA } from '../../src/scim/scim.schemas.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { runNow } from '../support/fixtures.js';

/**
 * Upgrading to targeted scim runs (2026-11-30T0100-scim-unapplied) loses no push: what was
 * pushed before the upgrade and not yet applied is named by the migration, so the first
 * targeted run after it applies it, and a full run then finds nothing left.
 */

const BEFORE = '2026-11-30T0000-scim';

let db: Db;
let drop: () => Promise<void>;
let config: Config;
let migrator: Migrator;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
  migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
});
afterAll(async () => {
  await drop();
});

const user = (userName: string, active = true) => withFingerprint(readUserBody({ schemas: [USER_SCHEMA], userName, name: { givenName: userName, familyName: 'M' }, active }));

describe('migration 2026-11-30T0100-scim-unapplied', () => {
  it('names what was pushed before it and not applied, and the first targeted run applies it', async () => {
    const slug = uniqueSlug();
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim', deprovision: 'remove-access' });
    const scim = new ScimRepository(db);
    const [ann, bob, cy] = [await scim.createUser(integration.id, user('ann@m.test')), await scim.createUser(integration.id, user('bob@m.test')), await scim.createUser(integration.id, user('cy@m.test'))];
    const eng = await scim.createGroup(integration.id, { displayName: 'Eng', externalId: null, resource: { displayName: 'Eng' } });
    const ops = await scim.createGroup(integration.id, { displayName: 'Ops', externalId: null, resource: { displayName: 'Ops' } });
    await scim.addMembers(eng.id, [ann.id, bob.id]);
    await scim.addMembers(ops.id, [cy.id]);
    expect((await runNow({ db, config }, integration.id)).counts).toMatchObject({ usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });

    // The old schema: pushes are stored, nothing names them.
    const down = await migrator.migrateTo(BEFORE);
    expect(down.error).toBeUndefined();
    await scim.createUser(integration.id, user('dee@m.test'));
    await scim.replaceUser(integration.id, bob.id, user('bob@m.test', false));
    await scim.deleteUser(integration.id, cy.id);
    await scim.removeMembers(eng.id, [ann.id]);
    await scim.deleteGroup(integration.id, ops.id);
    await scim.replaceGroup(integration.id, eng.id, { displayName: 'Engineering', externalId: null, resource: { displayName: 'Engineering' } });

    const up = await migrator.migrateToLatest();
    expect(up.error).toBeUndefined();
    const targeted = await runNow({ db, config }, integration.id, { trigger: 'scim' });
    expect(targeted).toMatchObject({ mode: 'targeted', status: 'succeeded' });
    expect(targeted.counts).toMatchObject({ usersCreated: 1, usersDeprovisioned: 2, groupsDeleted: 1, groupsUpdated: 1, membershipsRemoved: 3 });
    const groups = await new DirectoryRepository(db).listTenantGroups(tenant.id);
    expect(groups.map((g) => [g.name, g.members])).toEqual([['Engineering', []]]);
    const full = await runNow({ db, config }, integration.id, { dryRun: true });
    expect(Object.values(full.counts ?? {}).every((n) => n === 0), JSON.stringify(full.counts)).toBe(true);
  });
});
