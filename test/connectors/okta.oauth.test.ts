import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IdpReadError } from '../../src/connectors/connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import type { OktaPrivateKeyCredentials } from '../../src/integrations/credentials.js';
import { parseOktaPrivateKey } from '../../src/integrations/okta-private-key.js';
import { checkClientAssertion, checkDpopProof, serviceAppKey } from '../support/okta-oauth.js';
import { strictEgress } from '../support/egress.js';

// Okta's org authorization server and management API at the wire: the SDK's private-key mode
// signs a client assertion, trades it for an access token, and sends that token on every call.
const ORG = 'https://acme.okta.test';
const TOKEN_URL = `${ORG}/oauth2/v1/token`;
const CLIENT_ID = '0oaServiceApp1';
const FAST_RETRY = { retries: 1, minTimeoutMs: 10, maxTimeoutMs: 20 };

const user = {
  id: '00u1',
  status: 'ACTIVE',
  created: '2023-03-01T10:00:00.000Z',
  activated: '2023-03-01T10:00:01.000Z',
  statusChanged: null,
  lastLogin: null,
  lastUpdated: '2024-05-01T10:00:00.000Z',
  passwordChanged: null,
  type: { id: 'oty1abcdEFGH2345' },
  profile: { firstName: 'Ann', lastName: 'Lee', login: 'ann@acme.test', email: 'ann@acme.test' },
  credentials: { provider: { type: 'OKTA', name: 'OKTA' } },
  _links: { self: { href: `${ORG}/api/v1/users/00u1` } },
};
const group = {
  id: '00g1',
  created: '2023-01-01T00:00:00.000Z',
  lastUpdated: '2024-01-01T00:00:00.000Z',
  lastMembershipUpdated: '2024-02-01T00:00:00.000Z',
  objectClass: ['okta:user_group'],
  type: 'OKTA_GROUP',
  profile: { name: 'Engineering', description: null },
  _links: {},
};

const rate = () => ({ 'X-Rate-Limit-Limit': '600', 'X-Rate-Limit-Remaining': '598', 'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000) + 60), Date: new Date().toUTCString() });

function credentials(key: string, keyId?: string): OktaPrivateKeyCredentials {
  const { jwk, keyId: kid } = parseOktaPrivateKey(key, keyId);
  return { kind: 'okta-private-key', clientId: CLIENT_ID, privateKey: jwk, keyId: kid };
}

function connector(creds: OktaPrivateKeyCredentials, appId?: string) {
  return new OktaConnector({ orgUrl: ORG, credentials: creds, egress: strictEgress, appId, retry: FAST_RETRY });
}

interface TokenRequest {
  scope: string;
  assertion: ReturnType<typeof checkClientAssertion>;
  dpop: string | undefined;
}

/** The token endpoint: records each request, verifies its assertion, answers with `answer`. */
function tokenEndpoint(key: ReturnType<typeof serviceAppKey>, answer: (req: TokenRequest) => [number, unknown, Record<string, string>?], keyId?: string) {
  const seen: TokenRequest[] = [];
  nock(ORG)
    .post('/oauth2/v1/token')
    .times(5)
    .reply(function (_uri, body) {
      const form = new URLSearchParams(String(body));
      expect(form.get('grant_type')).toBe('client_credentials');
      expect(form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      const request: TokenRequest = {
        scope: form.get('scope') ?? '',
        assertion: checkClientAssertion(form.get('client_assertion') ?? '', { publicKey: key.publicKey, clientId: CLIENT_ID, tokenUrl: TOKEN_URL, keyId }),
        dpop: this.req.headers.dpop as string | undefined,
      };
      seen.push(request);
      const [status, json, headers] = answer(request);
      return [status, json, { 'content-type': 'application/json', ...headers }];
    });
  return seen;
}

function orgListings(authorization: string | ((value: string) => boolean)) {
  return nock(ORG, { reqheaders: { authorization } })
    .get('/api/v1/users').query({ limit: '200' }).reply(200, [user], rate())
    .get('/api/v1/users').query({ filter: 'status eq "DEPROVISIONED"', limit: '200' }).reply(200, [], rate())
    .get('/api/v1/groups').query({ limit: '10000' }).reply(200, [group], rate())
    .get('/api/v1/groups/00g1/users').query({ limit: '1000' }).reply(200, [user], rate());
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('Okta service app (OAuth 2.0, private key)', () => {
  const rsa = serviceAppKey('rsa');

  it('signs the client assertion with the configured key, asks for exactly the scopes a sync needs, and reads with the token', async () => {
    const seen = tokenEndpoint(rsa, () => [200, { token_type: 'Bearer', expires_in: 3600, access_token: 'at-1', scope: 'okta.users.read okta.groups.read' }], 'kid-1');
    orgListings('Bearer at-1');
    const snapshot = await connector(credentials(rsa.privatePem, 'kid-1')).readSnapshot();

    expect([...snapshot.users.keys()]).toEqual(['00u1']);
    expect(seen).toHaveLength(1); // one token for the whole read
    expect(seen[0]!.scope).toBe('okta.users.read okta.groups.read');
    const assertion = seen[0]!.assertion;
    expect('error' in assertion ? assertion : 'ok').toBe('ok');
    if (!('error' in assertion)) {
      expect(assertion.header).toMatchObject({ alg: 'RS256', kid: 'kid-1' });
      expect(assertion.claims).toMatchObject({ iss: CLIENT_ID, sub: CLIENT_ID, aud: TOKEN_URL });
    }
  });

  it('adds okta.apps.read only when the integration is scoped to an app', async () => {
    const seen = tokenEndpoint(rsa, () => [200, { token_type: 'Bearer', expires_in: 3600, access_token: 'at-2' }]);
    nock(ORG)
      .get('/api/v1/apps/0oaApp/users').query(true).reply(200, [], rate())
      .get('/api/v1/apps/0oaApp/groups').query(true).reply(200, [], rate());
    await connector(credentials(rsa.privateJwk), '0oaApp').readSnapshot();
    expect(seen[0]!.scope).toBe('okta.users.read okta.groups.read okta.apps.read');
  });

  it('refuses an EC key up front: the SDK signs its DPoP proofs as RS256, so it could never get a token', () => {
    expect(() => credentials(serviceAppKey('ec').privateJwk)).toThrow(/is an EC key: dirsync needs an RSA key/);
  });

  it('answers a DPoP nonce demand, then sends DPoP-bound requests with a proof per call', async () => {
    const seen = tokenEndpoint(rsa, (req) => {
      const proof = checkDpopProof(req.dpop, { method: 'POST', url: TOKEN_URL });
      if ('error' in proof) return [400, { error: 'invalid_dpop_proof', error_description: proof.error }];
      if (proof.nonce !== 'nonce-1') {
        return [400, { error: 'use_dpop_nonce', error_description: 'Authorization server requires nonce in DPoP proof.' }, { 'DPoP-Nonce': 'nonce-1' }];
      }
      return [200, { token_type: 'DPoP', expires_in: 3600, access_token: 'at-dpop', scope: 'okta.users.read okta.groups.read' }];
    });
    const proofs: string[] = [];
    nock(ORG)
      .get(/\/api\/v1\/.*/)
      .times(4)
      .reply(function (uri) {
        expect(this.req.headers.authorization).toBe('DPoP at-dpop');
        const proof = checkDpopProof(this.req.headers.dpop as string, { method: 'GET', url: `${ORG}${uri}`, accessToken: 'at-dpop' });
        if ('error' in proof) return [401, { errorCode: 'E0000011', errorSummary: proof.error }];
        proofs.push(uri);
        const path = uri.split('?')[0];
        const body = path === '/api/v1/users' ? (uri.includes('DEPROVISIONED') ? [] : [user]) : path === '/api/v1/groups' ? [group] : [user];
        return [200, body, rate()];
      });

    const snapshot = await connector(credentials(rsa.privatePem)).readSnapshot();
    expect(snapshot.users.size).toBe(1);
    expect(seen).toHaveLength(2); // the nonce demand, then the token
    expect(proofs).toHaveLength(4);
  });

  it('says so when Okta keeps demanding a new DPoP nonce', async () => {
    const seen = tokenEndpoint(rsa, () => [
      400,
      { error: 'use_dpop_nonce', error_description: 'Authorization server requires nonce in DPoP proof.' },
      { 'DPoP-Nonce': `nonce-${Math.random()}` },
    ]);
    const error = await connector(credentials(rsa.privatePem)).readSnapshot().catch((e: unknown) => e);
    expect((error as IdpReadError).problem?.kind).toBe('unauthorized');
    expect((error as Error).message).toMatch(/Okta refused dirsync's DPoP proof \(Okta: "Authorization server requires nonce in DPoP proof\."\)/);
    expect(seen).toHaveLength(2); // the first demand is answered once, not in a loop
  });

  it('names the scope Okta refuses to grant, and does not retry', async () => {
    const seen = tokenEndpoint(rsa, () => [400, { error: 'invalid_scope', error_description: 'The following scopes are not allowed: okta.groups.read' }]);
    const error = await connector(credentials(rsa.privatePem)).readSnapshot().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdpReadError);
    expect((error as IdpReadError).problem?.kind).toBe('missing-scope');
    expect((error as Error).message).toMatch(/not granted the scope okta\.groups\.read: grant it in the Okta Admin Console/);
    expect(seen).toHaveLength(1);
  });

  it('says when the client id or key is wrong (401 invalid_client)', async () => {
    const other = serviceAppKey('rsa');
    tokenEndpoint(rsa, (req) =>
      'error' in req.assertion ? [401, { error: req.assertion.error, error_description: req.assertion.description }] : [200, { token_type: 'Bearer', access_token: 'x' }],
    );
    const error = await connector(credentials(other.privatePem)).readSnapshot().catch((e: unknown) => e);
    expect((error as IdpReadError).problem?.kind).toBe('unauthorized');
    expect((error as Error).message).toMatch(/rejected the service app's credentials \(Okta: "The client_assertion signature is invalid."\): check --okta-client-id/);
    // The private key never appears in what is reported.
    const jwk = JSON.parse(credentials(other.privatePem).privateKey) as { d: string };
    expect((error as Error).message).not.toContain(jwk.d);
  });

  it('asks for one new token when concurrent reads find theirs expired', async () => {
    let issued = 0;
    tokenEndpoint(rsa, () => [200, { token_type: 'Bearer', expires_in: 3600, access_token: `at-${++issued}` }]);
    const groups = ['00g1', '00g2', '00g3', '00g4'].map((id) => ({ ...group, id }));
    nock(ORG)
      .get('/api/v1/users').query(true).reply(200, [user], rate())
      .get('/api/v1/users').query(true).reply(200, [], rate())
      .get('/api/v1/groups').query(true).reply(200, groups, rate())
      .get(/\/api\/v1\/groups\/00g\d\/users/)
      .times(8)
      .reply(function () {
        // The first token expires as the member reads start: each read is refused once.
        return this.req.headers.authorization === 'Bearer at-1'
          ? [401, { errorCode: 'E0000011', errorSummary: 'Invalid token provided', errorCauses: [] }, rate()]
          : [200, [user], rate()];
      });
    const snapshot = await connector(credentials(rsa.privatePem)).readSnapshot();
    expect(snapshot.groups.size).toBe(4);
    expect(issued).toBeLessThanOrEqual(2);
  });

  it('keeps the access token out of an error that echoes it', async () => {
    tokenEndpoint(rsa, () => [200, { token_type: 'Bearer', expires_in: 3600, access_token: 'at-secret-echoed-123' }]);
    nock(ORG)
      .get('/api/v1/users').query(true)
      .reply(400, { errorCode: 'E0000001', errorSummary: 'Api validation failed: Authorization: Bearer at-secret-echoed-123', errorCauses: [] }, rate());
    const error = await connector(credentials(rsa.privatePem)).readSnapshot().catch((e: unknown) => e);
    expect((error as Error).message).toContain('Authorization: Bearer [redacted]');
    expect((error as Error).message).not.toContain('at-secret-echoed-123');
  });

  it("names the scope an API call needs when the token lacks it (403 insufficient_scope)", async () => {
    tokenEndpoint(rsa, () => [200, { token_type: 'Bearer', expires_in: 3600, access_token: 'at-3' }]);
    nock(ORG)
      .get('/api/v1/users').query(true).reply(200, [user], rate())
      .get('/api/v1/users').query(true).reply(200, [], rate())
      .get('/api/v1/groups').query(true)
      .reply(403, { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action', errorCauses: [] }, {
        ...rate(),
        'WWW-Authenticate': `Bearer authorization_uri="${ORG}/oauth2/v1/authorize", realm="${ORG}", scope="okta.groups.read", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="/api/v1/groups"`,
      });
    const error = await connector(credentials(rsa.privatePem)).readSnapshot().catch((e: unknown) => e);
    expect((error as IdpReadError).problem?.kind).toBe('missing-scope');
    expect((error as Error).message).toMatch(/lacks the scope okta\.groups\.read/);
  });
});
