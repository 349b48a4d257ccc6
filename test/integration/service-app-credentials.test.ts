import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { VerificationError } from '../../src/integrations/connection-check.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration } from '../support/fixtures.js';
import { serviceAppKey } from '../support/okta-oauth.js';

// Moving between an API token and a service app, and changing one part of a service app's
// credentials, through the service that the CLI and the API share.
let db: Db;
let drop: () => Promise<void>;
let okta: FakeOkta;
let config: ReturnType<typeof testConfig>;
const key = serviceAppKey('rsa');

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
  okta = await new FakeOkta().start();
  okta.addApp('0oaMove');
  okta.serviceApp = { clientId: '0oaMoveSvc', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set(['okta.users.read', 'okta.groups.read', 'okta.apps.read']), dpop: false };
});

afterAll(async () => {
  await okta.stop();
  await drop();
});

describe('service app credentials', () => {
  it('moves a token integration to a service app, then changes only its key id', async () => {
    const { integrationId: id } = await createOktaIntegration(db, config, okta, { appId: '0oaMove' });
    const svc = new IntegrationService(db, config);
    // Only a key id: there is no service app to change yet.
    await expect(svc.update(id, { oktaKeyId: 'k1' })).rejects.toThrow('an Okta service app needs both --okta-client-id and --okta-private-key-file');

    const moved = await svc.update(id, { oktaClientId: '0oaMoveSvc', oktaPrivateKey: key.privatePem, oktaKeyId: 'k1' });
    expect(moved.check?.ok).toBe(true);
    expect(moved.integration).toMatchObject({ credentialKind: 'okta-private-key', oktaClientId: '0oaMoveSvc' });
    expect(await svc.credentials(id)).toMatchObject({ kind: 'okta-private-key', clientId: '0oaMoveSvc', keyId: 'k1' });

    // Okta now knows the key as k2: an update of the key id alone keeps the key and client id.
    okta.serviceApp!.keyId = 'k2';
    await expect(svc.test(id)).resolves.toMatchObject({ ok: false });
    const rekeyed = await svc.update(id, { oktaKeyId: 'k2' });
    expect(rekeyed.check?.ok).toBe(true);
    const stored = await svc.credentials(id);
    expect(stored).toMatchObject({ kind: 'okta-private-key', clientId: '0oaMoveSvc', keyId: 'k2' });
    expect(JSON.parse(stored.kind === 'okta-private-key' ? stored.privateKey : '{}')).toMatchObject({ kid: 'k2' });

    // A refused change stores nothing: the integration still works as it was.
    await expect(svc.update(id, { oktaClientId: '0oaSomeoneElse' })).rejects.toBeInstanceOf(VerificationError);
    expect(await svc.credentials(id)).toMatchObject({ clientId: '0oaMoveSvc' });

    // And back to a token.
    const back = await svc.update(id, { token: okta.token });
    expect(back.integration).toMatchObject({ credentialKind: 'token', oktaClientId: null });
  });
});
