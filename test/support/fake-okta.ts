import { type KeyObject, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OktaDirectoryServer } from '../../src/demo/okta-directory.js';
import { type FaultInjector, serveFault } from './faults.js';
import { type Jws, checkClientAssertion, checkDpopProof } from './okta-oauth.js';

/**
 * The tests' fake Okta org: the demo's Okta directory server (src/demo/okta-directory.ts: the
 * management API's wire format, paging, errors) plus what tests need of a real org beyond it:
 * OAuth 2.0 service apps (private-key JWT client credentials, DPoP, granted scopes), injected
 * faults per request, and a slow answer. Tests mutate the directory between syncs.
 */

export type { OktaStatus, OktaUserRecord as FakeUser, OktaGroupRecord as FakeGroup, OktaAppRecord as FakeApp } from '../../src/demo/okta-directory.js';
export type { FaultInjector, InjectedResponse } from './faults.js';

/** An OAuth 2.0 service app registered in the org (API Services app, public key / private key). */
export interface FakeServiceApp {
  clientId: string;
  publicKey: KeyObject;
  /** The kid Okta knows the public key by; assertions must name it when set. */
  keyId?: string;
  /** Okta API scopes granted to the app (its "Okta API Scopes" tab). */
  grantedScopes: Set<string>;
  /** "Require DPoP header in token requests". */
  dpop: boolean;
}

export interface FakeTokenRequest {
  scopes: string[];
  assertion: Jws | { error: string; description: string };
  dpop: boolean;
}

// The scope each management API family needs (Okta's "Scopes and supported endpoints").
const SCOPE_OF: Record<string, string> = { users: 'okta.users.read', groups: 'okta.groups.read', apps: 'okta.apps.read', logs: 'okta.logs.read' };

export class FakeOkta extends OktaDirectoryServer {
  fault: FaultInjector | undefined;
  /** Delays every answer (a slow IdP). */
  responseDelayMs = 0;
  serviceApp: FakeServiceApp | undefined;
  /** Every request to the token endpoint, decoded. */
  readonly tokenRequests: FakeTokenRequest[] = [];
  private readonly accessTokens = new Map<string, { scopes: Set<string>; thumbprint: string | undefined }>();
  private readonly dpopNonce = randomBytes(8).toString('hex');

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.responseDelayMs > 0) {
      setTimeout(() => this.answer(req, res), this.responseDelayMs);
      return;
    }
    this.answer(req, res);
  }

  protected override intercept(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const injected = this.fault?.({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, n: this.requests.length });
    if (injected && serveFault(req, res, injected)) return true;
    if (req.method === 'POST' && url.pathname === '/oauth2/v1/token') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.issueToken(req, res, new URLSearchParams(Buffer.concat(chunks).toString())));
      return true;
    }
    return false;
  }

  /** What Okta checks of a request without the SSWS token: an access token with the scope (and its DPoP proof). */
  protected override authorizeOther(req: IncomingMessage, res: ServerResponse, url: URL, family: string | undefined): (() => void) | undefined {
    const header = req.headers.authorization ?? '';
    const [scheme, value = ''] = header.split(' ');
    const granted = (scheme === 'Bearer' || scheme === 'DPoP') && this.accessTokens.get(value);
    if (!granted) return () => this.error(res, 401, 'E0000011', 'Invalid token provided');
    if (granted.thumbprint !== undefined) {
      if (scheme !== 'DPoP') return () => this.error(res, 401, 'E0000011', 'Invalid token provided');
      const proof = checkDpopProof(req.headers.dpop as string | undefined, { method: req.method ?? 'GET', url: `${this.url}${url.pathname}${url.search}`, accessToken: value });
      if ('error' in proof || proof.thumbprint !== granted.thumbprint) {
        const description = 'error' in proof ? proof.error : 'The DPoP proof was not signed with the key the token is bound to.';
        return () => this.error(res, 400, 'E0000011', description, { 'www-authenticate': `DPoP error="invalid_dpop_proof", error_description="${description}"` });
      }
    }
    const needed = SCOPE_OF[family ?? ''];
    if (needed && !granted.scopes.has(needed)) {
      return () =>
        this.error(res, 403, 'E0000006', 'You do not have permission to perform the requested action', {
          'www-authenticate': `Bearer authorization_uri="${this.url}/oauth2/v1/authorize", realm="${this.url}", scope="${needed}", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="${url.pathname}"`,
        });
    }
    return undefined;
  }

  /** POST /oauth2/v1/token: client credentials with a private-key JWT, as the org authorization server does it. */
  private issueToken(req: IncomingMessage, res: ServerResponse, form: URLSearchParams): void {
    const oauthError = (status: number, error: string, description: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers, ...this.rateHeaders() });
      res.end(JSON.stringify({ error, error_description: description }));
    };
    const app = this.serviceApp;
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const assertion =
      app && form.get('client_assertion')
        ? checkClientAssertion(form.get('client_assertion')!, { publicKey: app.publicKey, clientId: app.clientId, tokenUrl: `${this.url}/oauth2/v1/token`, keyId: app.keyId })
        : { error: 'invalid_client', description: 'Client authentication failed. Either the client or the client credentials are invalid.' };
    this.tokenRequests.push({ scopes, assertion, dpop: req.headers.dpop !== undefined });
    if (form.get('grant_type') !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', `The authorization grant type is not supported.`);
    if ('error' in assertion || !app) return oauthError(401, 'invalid_client', 'error' in assertion ? assertion.description : 'no such client');
    if (scopes.length === 0) return oauthError(400, 'invalid_scope', "The authorization server resource does not have any configured default scopes, 'scope' must be provided.");
    const refused = scopes.filter((scope) => !app.grantedScopes.has(scope));
    if (refused.length > 0) return oauthError(400, 'invalid_scope', `The following scopes are not allowed: ${refused.join(', ')}`);
    let thumbprint: string | undefined;
    if (app.dpop) {
      const proof = checkDpopProof(req.headers.dpop as string | undefined, { method: 'POST', url: `${this.url}/oauth2/v1/token` });
      if ('error' in proof) return oauthError(400, 'invalid_dpop_proof', proof.error);
      if (proof.nonce !== this.dpopNonce) {
        return oauthError(400, 'use_dpop_nonce', 'Authorization server requires nonce in DPoP proof.', { 'dpop-nonce': this.dpopNonce });
      }
      thumbprint = proof.thumbprint;
    }
    const accessToken = `eyJfake.${randomBytes(16).toString('base64url')}`;
    this.accessTokens.set(accessToken, { scopes: new Set(scopes), thumbprint });
    res.writeHead(200, { 'content-type': 'application/json', ...this.rateHeaders() });
    res.end(JSON.stringify({ token_type: app.dpop ? 'DPoP' : 'Bearer', expires_in: 3600, access_token: accessToken, scope: scopes.join(' ') }));
  }

}
