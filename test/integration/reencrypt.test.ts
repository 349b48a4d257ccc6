import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireKeyring } from '../../src/config.js';
import { DecryptionError, hashSecret, isUnderCurrentKey, newSecret } from '../../src/crypto.js';
import type { Db } from '../../src/db/database.js';
import { IntegrationRepository } from '../../src/db/integration.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { sealCredentials } from '../../src/integrations/credentials.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { type ReencryptOutcome, reencryptCredentials } from '../../src/integrations/reencrypt.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { runNow } from '../support/fixtures.js';

const OLD_KEY = randomBytes(32).toString('base64');
const NEW_KEY = randomBytes(32).toString('base64');
const STRANGER_KEY = randomBytes(32).toString('base64');

let db: Db;
let dropDb: () => Promise<void>;
let url: string;
let tenantId: string;

/** The config of a process started with these keys. */
const withKeys = (key: string, previous?: string) =>
  testConfig({ DATABASE_URL: url, DIRSYNC_ENCRYPTION_KEY: key, ...(previous ? { DIRSYNC_ENCRYPTION_KEY_PREVIOUS: previous } : {}) });

beforeEach(async () => {
  ({ db, url, drop: dropDb } = await createTestDatabase());
  const slug = uniqueSlug('rot');
  tenantId = (await new TenantRepository(db).create(slug, slug))!.id;
});
afterEach(async () => {
  await dropDb();
});

/**
 * Integrations as a process whose DIRSYNC_ENCRYPTION_KEY was `key` stores them (rows written
 * directly: `integration create` would also check an IdP): id to token.
 */
async function createIntegrations(key: string, count: number): Promise<Map<string, string>> {
  const integrations = new IntegrationRepository(db);
  const tokens = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    const token = `tok-${randomBytes(8).toString('hex')}`;
    await integrations.insert({
      id,
      tenant_id: tenantId,
      provider: 'okta',
      base_url: 'https://acme.okta.test',
      credentials: sealCredentials(Buffer.from(key, 'base64'), id, { kind: 'token', token }),
      webhook_secret_hash: hashSecret(newSecret()),
    });
    tokens.set(id, token);
  }
  return tokens;
}

/** What `service` reads for each integration: its token, or the message of its DecryptionError. */
async function readAll(service: IntegrationService, ids: Iterable<string>): Promise<Map<string, string>> {
  const read = new Map<string, string>();
  for (const id of ids) {
    try {
      const credentials = await service.credentials(id);
      read.set(id, credentials.kind === 'token' ? credentials.token : credentials.kind);
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
      read.set(id, error.message);
    }
  }
  return read;
}

async function underNewKey(ids: Iterable<string>): Promise<string[]> {
  const keys = requireKeyring(withKeys(NEW_KEY));
  const repository = new IntegrationRepository(db);
  const current: string[] = [];
  for (const id of ids) if (isUnderCurrentKey(keys, (await repository.loadCredentials(id))!)) current.push(id);
  return current;
}

describe('re-encrypting credentials under a new key', () => {
  it('survives an interruption half-way, reads the mix with both keys, and finishes on the next pass', async () => {
    const tokens = await createIntegrations(OLD_KEY, 5);
    const ids = [...tokens.keys()];
    const updatedBefore = (await new IntegrationService(db, withKeys(OLD_KEY)).list()).map((i) => i.updatedAt);
    const rotating = withKeys(NEW_KEY, OLD_KEY);

    // The first pass dies after its second integration.
    const seen: [string, ReencryptOutcome['kind']][] = [];
    const interrupted = reencryptCredentials(db, requireKeyring(rotating), {
      afterIntegration: (id, outcome) => {
        seen.push([id, outcome.kind]);
        if (seen.length === 2) throw new Error('interrupted');
      },
    });
    await expect(interrupted).rejects.toThrow('interrupted');
    expect(seen.map(([, kind]) => kind)).toEqual(['reencrypted', 'reencrypted']);
    const done = seen.map(([id]) => id);
    expect(await underNewKey(ids)).toEqual(done);

    // Mid-rotation, the new key with the old one as previous reads every integration.
    expect(await readAll(new IntegrationService(db, rotating), ids)).toEqual(tokens);
    // Either key alone reads only its share.
    const newOnly = await readAll(new IntegrationService(db, withKeys(NEW_KEY)), ids);
    const oldOnly = await readAll(new IntegrationService(db, withKeys(OLD_KEY)), ids);
    for (const id of ids) {
      const [withNew, withOld] = done.includes(id) ? [newOnly, oldOnly] : [oldOnly, newOnly];
      expect(withNew.get(id)).toBe(tokens.get(id));
      expect(withOld.get(id)).toMatch(/^stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured/);
    }

    // The next pass skips what the first one did and finishes; another finds nothing to do.
    expect(await reencryptCredentials(db, requireKeyring(rotating))).toEqual({ reencrypted: 3, alreadyCurrent: 2, failed: 0, failures: [] });
    expect(await reencryptCredentials(db, requireKeyring(rotating))).toEqual({ reencrypted: 0, alreadyCurrent: 5, failed: 0, failures: [] });

    // Now the new key alone reads everything, and the old one nothing.
    expect(await underNewKey(ids)).toEqual(ids);
    expect(await readAll(new IntegrationService(db, withKeys(NEW_KEY)), ids)).toEqual(tokens);
    for (const message of (await readAll(new IntegrationService(db, withKeys(OLD_KEY)), ids)).values()) {
      expect(message).toMatch(/^stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY/);
    }
    // Re-encrypting changed no setting.
    expect((await new IntegrationService(db, withKeys(NEW_KEY)).list()).map((i) => i.updatedAt)).toEqual(updatedBefore);
  });

  it('keeps a token set during the pass instead of overwriting it', async () => {
    const tokens = await createIntegrations(OLD_KEY, 3);
    const ids = [...tokens.keys()];
    const rotating = withKeys(NEW_KEY, OLD_KEY);
    const report = await reencryptCredentials(db, requireKeyring(rotating), {
      afterIntegration: async (id) => {
        // An admin sets a new token on the last integration while the pass is under way.
        if (id !== ids[0]) return;
        const sealed = sealCredentials(requireKeyring(rotating).current, ids[2]!, { kind: 'token', token: 'tok-set-meanwhile' });
        await new IntegrationRepository(db).update(ids[2]!, { credentials: sealed });
      },
    });
    expect(report).toEqual({ reencrypted: 2, alreadyCurrent: 1, failed: 0, failures: [] });
    expect(await readAll(new IntegrationService(db, withKeys(NEW_KEY)), ids)).toEqual(new Map([...tokens, [ids[2]!, 'tok-set-meanwhile']]));
  });

  it('reports an integration under an unknown key, re-encrypts the others, and leaves it as it was', async () => {
    const tokens = await createIntegrations(OLD_KEY, 2);
    const [stranger] = [...(await createIntegrations(STRANGER_KEY, 1)).keys()];
    for (const [id, token] of await createIntegrations(OLD_KEY, 1)) tokens.set(id, token);
    const strangerBefore = await new IntegrationRepository(db).loadCredentials(stranger!);
    const rotating = withKeys(NEW_KEY, OLD_KEY);
    const reason =
      'stored credentials were encrypted with a key that is neither DIRSYNC_ENCRYPTION_KEY nor one of DIRSYNC_ENCRYPTION_KEY_PREVIOUS: add that key to DIRSYNC_ENCRYPTION_KEY_PREVIOUS, or enter the credentials again with `dirsync integration update`';

    expect(await reencryptCredentials(db, requireKeyring(rotating))).toEqual({
      reencrypted: 3,
      alreadyCurrent: 0,
      failed: 1,
      failures: [{ integrationId: stranger, reason }],
    });
    expect(await new IntegrationRepository(db).loadCredentials(stranger!)).toEqual(strangerBefore);
    expect(await readAll(new IntegrationService(db, withKeys(NEW_KEY)), tokens.keys())).toEqual(tokens);

    // The worker's run says the same, and fails without calling the IdP.
    const run = await runNow({ db, config: rotating }, stranger!);
    expect(run).toMatchObject({ status: 'failed', error: `cannot read the integration's credentials: ${reason}` });

    // Once the stranger key is listed too, a second pass finishes.
    const all = withKeys(NEW_KEY, `${OLD_KEY},${STRANGER_KEY}`);
    expect(await reencryptCredentials(db, requireKeyring(all))).toEqual({ reencrypted: 1, alreadyCurrent: 3, failed: 0, failures: [] });
  });
});
