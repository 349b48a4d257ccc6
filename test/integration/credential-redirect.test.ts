import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { serviceAppKey } from '../support/okta-oauth.js';
import { startTestServer } from '../support/test-server.js';

// SPEC "Operator safety": stored credentials stay with their host. An admin API PATCH that moves
// an integration to another origin must bring the credential along, for every credential kind,
// with or without `verify: false`; a refused one sends nothing to the new address.
const ADMIN = 'admin-token-for-tests-0123456789';
let db: Db;
let drop: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let config: ReturnType<typeof testConfig>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
});
afterAll(async () => {
  await close();
  await drop();
});

const call = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
  app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload ? { payload } : {}) });

async function tenant(): Promise<string> {
  const slug = uniqueSlug('redir');
  expect((await call('POST', '/tenants', { slug })).statusCode).toBe(201);
  return slug;
}

async function okta(token: string): Promise<FakeOkta> {
  const org = await new FakeOkta().start();
  onTestFinished(() => org.stop());
  org.token = token;
  org.addApp('0oaRedir');
  return org;
}

async function authentik(token: string): Promise<FakeAuthentik> {
  const ak = await new FakeAuthentik().start();
  onTestFinished(() => ak.stop());
  ak.token = token;
  return ak;
}

/** Every request the IdP at the new address saw, token endpoint included. */
const seenBy = (idp: FakeOkta | FakeAuthentik) => [...idp.requests, ...('tokenRequests' in idp ? idp.tokenRequests.map(() => 'POST token') : [])];

describe('admin API: a new base URL origin needs the credential again', () => {
  it('okta API token: refused without it (verify or not), nothing sent there; accepted with it', async () => {
    const [home, away] = [await okta('home-token-0123456789'), await okta('away-token-0123456789')];
    const created = await call('POST', '/integrations', { tenant: await tenant(), provider: 'okta', baseUrl: home.url, token: home.token, oktaAppId: '0oaRedir' });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id as string;

    for (const payload of [{ baseUrl: away.url }, { baseUrl: away.url, verify: false }, { baseUrl: away.url, every: '1h', verify: false }]) {
      const refused = await call('PATCH', `/integrations/${id}`, payload);
      expect(refused.statusCode, JSON.stringify(payload)).toBe(400);
      expect(refused.json().error).toEqual({
        code: 'bad_request',
        message: `baseUrl moves the integration from ${home.url} to ${away.url}, and stored credentials are never sent to a new address: give token in the same update`,
      });
    }
    expect(seenBy(away)).toEqual([]);
    expect((await call('GET', `/integrations/${id}`)).json()).toMatchObject({ baseUrl: home.url, schedule: 'manual only' });

    const moved = await call('PATCH', `/integrations/${id}`, { baseUrl: away.url, token: away.token });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ baseUrl: away.url, check: { ok: true } });
    expect(seenBy(away).length).toBeGreaterThan(0);
    expect(await new IntegrationService(db, config).credentials(id)).toEqual({ kind: 'token', token: away.token });
  });

  it('authentik API token: refused without it, accepted with it', async () => {
    const [home, away] = [await authentik('ak-home-0123456789'), await authentik('ak-away-0123456789')];
    const created = await call('POST', '/integrations', { tenant: await tenant(), provider: 'authentik', baseUrl: home.url, token: home.token });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id as string;
    const refused = await call('PATCH', `/integrations/${id}`, { baseUrl: away.url, verify: false });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.message).toMatch(/^baseUrl moves the integration from .* give token in the same update$/);
    expect(seenBy(away)).toEqual([]);
    const moved = await call('PATCH', `/integrations/${id}`, { baseUrl: away.url, token: away.token });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ baseUrl: away.url, check: { ok: true } });
  });

  it('okta service app: refused without client id and key (a key alone is not enough), accepted with both', async () => {
    const key = serviceAppKey('rsa');
    const [home, away] = [await okta('unused-home-0123456789'), await okta('unused-away-0123456789')];
    for (const org of [home, away]) {
      org.serviceApp = { clientId: '0oaSvcApp', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set(['okta.users.read', 'okta.groups.read', 'okta.apps.read']), dpop: false };
    }
    const created = await call('POST', '/integrations', {
      tenant: await tenant(), provider: 'okta', baseUrl: home.url, oktaClientId: '0oaSvcApp', oktaPrivateKey: key.privatePem, oktaKeyId: 'k1', oktaAppId: '0oaRedir',
    });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id as string;
    const partial = [{ baseUrl: away.url }, { baseUrl: away.url, verify: false }, { baseUrl: away.url, oktaPrivateKey: key.privatePem }, { baseUrl: away.url, oktaClientId: '0oaSvcApp', oktaKeyId: 'k1' }];
    for (const payload of partial) {
      const refused = await call('PATCH', `/integrations/${id}`, payload);
      expect(refused.statusCode, JSON.stringify(payload)).toBe(400);
      expect(refused.json().error.message).toMatch(/^baseUrl moves the integration from .*: give oktaClientId with oktaPrivateKey \(or token\) in the same update$/);
    }
    expect(seenBy(away)).toEqual([]);
    const moved = await call('PATCH', `/integrations/${id}`, { baseUrl: away.url, oktaClientId: '0oaSvcApp', oktaPrivateKey: key.privatePem, oktaKeyId: 'k1' });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ baseUrl: away.url, auth: 'okta-private-key', check: { ok: true } });
    expect(away.tokenRequests.length).toBeGreaterThan(0);
  });

  it('the origin is what counts: a new port or scheme needs the credential, a new path on the same origin does not', async () => {
    const home = await okta('home-token-0123456789');
    const created = await call('POST', '/integrations', { tenant: await tenant(), provider: 'okta', baseUrl: home.url, token: home.token });
    const id = created.json().id as string;
    const url = new URL(home.url);
    const otherPort = `http://${url.hostname}:${Number(url.port) === 65535 ? 65534 : Number(url.port) + 1}`;
    const otherScheme = `https://${url.host}`;
    for (const baseUrl of [otherPort, otherScheme]) {
      const refused = await call('PATCH', `/integrations/${id}`, { baseUrl, verify: false });
      expect(refused.statusCode, baseUrl).toBe(400);
    }
    // Same origin: the stored token goes where it always went (no check asked for, since the path is wrong).
    const samePlace = await call('PATCH', `/integrations/${id}`, { baseUrl: `${home.url}/okta`, verify: false });
    expect(samePlace.statusCode, samePlace.body).toBe(200);
    expect(samePlace.json()).toMatchObject({ baseUrl: `${home.url}/okta` });
    const back = await call('PATCH', `/integrations/${id}`, { baseUrl: `${home.url}/` });
    expect(back.statusCode, back.body).toBe(200);
    expect(back.json()).toMatchObject({ baseUrl: home.url, check: { ok: true } });
  });
});
