import type okta from '@okta/okta-sdk-nodejs';
import type { Credentials } from '../../integrations/credentials.js';
import { statusOf } from '../retry.js';
import type { OAuthErrorBody, OktaRequestExecutor, TokenFailure } from './okta.executor.js';

/**
 * The Okta API scopes a sync needs, and no more: reading users and groups, and reading an
 * app's assignments only when the integration is scoped to an app.
 */
export function oktaScopes(appId: string | null | undefined): string[] {
  return appId ? ['okta.users.read', 'okta.groups.read', 'okta.apps.read'] : ['okta.users.read', 'okta.groups.read'];
}

/**
 * The scope reading the System Log needs (incremental runs). Asked for in a token of its own, so a
 * service app without it still syncs in full: a token request naming a scope the app is not
 * granted is refused whole.
 */
export const LOGS_SCOPE = 'okta.logs.read';

/** How the SDK authenticates: an SSWS token, or an OAuth service app's private key asking for `scopes`. */
export function sdkAuthConfig(credentials: Credentials, appId: string | null | undefined, scopes: readonly string[] = oktaScopes(appId)): Record<string, unknown> {
  // Every field explicit, so an okta.yaml or OKTA_CLIENT_* variables on the machine cannot change them.
  if (credentials.kind === 'token') return { authorizationMode: 'SSWS', token: credentials.token };
  return {
    authorizationMode: 'PrivateKey',
    clientId: credentials.clientId,
    scopes: [...scopes],
    privateKey: credentials.privateKey,
    keyId: credentials.keyId ?? '',
  };
}

/** Okta refused to issue an access token (POST /oauth2/v1/token), with its OAuth error. */
export class OktaTokenError extends Error {
  override name = 'OktaTokenError';
  constructor(
    readonly status: number,
    readonly body: OAuthErrorBody | undefined,
    options?: { cause?: unknown },
  ) {
    super(`Okta POST /oauth2/v1/token failed: HTTP ${status}${body?.error ? ` ${body.error}` : ''}${body?.error_description ? ` (${body.error_description})` : ''}`, options);
  }
}

interface AccessToken {
  access_token?: unknown;
  token_type?: unknown;
}

interface SdkOAuth {
  isDPoP: boolean;
  getAccessToken(nonce?: string | null): Promise<AccessToken>;
  clearCachedAccessToken(): void;
}

type Client = InstanceType<typeof okta.Client>;

/**
 * Wraps the SDK's token request (private-key mode only). SDK 8.1 imports its own error filter
 * wrongly, so a refused token request does not fail: Okta's OAuth error body is cached and used
 * as if it were a token ("Bearer undefined"), and every call then fails with a 401 that hides
 * the reason (a scope not granted, a wrong key). Here a refusal is an OktaTokenError carrying
 * Okta's error, and nothing is cached. The same holds should a fixed SDK throw instead.
 * DPoP: a `use_dpop_nonce` demand is answered with the nonce, and a token Okta issued as
 * DPoP-bound (token_type, RFC 9449) switches the SDK to DPoP proofs on every call.
 * `onToken` hears of every access token issued, so errors can be scrubbed of it.
 */
export function adaptTokenRequests(client: Client, executor: OktaRequestExecutor, onToken: (accessToken: string) => void): void {
  const oauth = (client as unknown as { oauth?: SdkOAuth }).oauth;
  if (!oauth) return;
  const getAccessToken = oauth.getAccessToken.bind(oauth);
  const request = async (nonce: string | null): Promise<AccessToken> => {
    let token: AccessToken | undefined;
    let failure: TokenFailure | undefined;
    try {
      token = await getAccessToken(nonce);
    } catch (error) {
      // Already explained: the nonce retry below, called back through the SDK.
      if (error instanceof OktaTokenError) throw error;
      // A refusal the SDK did throw (a body that is not JSON, or a fixed SDK) was recorded;
      // nothing recorded means no answer at all, a network failure for networkProblem to word.
      failure = executor.takeTokenFailure();
      if (!failure) throw error;
    }
    if (typeof token?.access_token === 'string') {
      if (token.token_type === 'DPoP') oauth.isDPoP = true;
      onToken(token.access_token);
      return token;
    }
    oauth.clearCachedAccessToken();
    failure ??= executor.takeTokenFailure();
    if (failure?.body?.error === 'use_dpop_nonce' && failure.nonce && nonce === null) {
      oauth.isDPoP = true;
      return oauth.getAccessToken(failure.nonce);
    }
    throw new OktaTokenError(failure?.status ?? 0, failure?.body ?? (token as OAuthErrorBody | undefined));
  };
  // Concurrent reads that find the token expired all ask for a new one: one request serves them
  // all, and the executor's record of a refusal belongs to that one request.
  let inFlight: Promise<AccessToken> | undefined;
  // The SDK answers every nonce demand with another request, without end: one is answered.
  let noncesAnswered = 0;
  oauth.getAccessToken = (nonce: string | null = null): Promise<AccessToken> => {
    if (nonce !== null) {
      if (++noncesAnswered > 1) {
        const failure = executor.takeTokenFailure();
        return Promise.reject(new OktaTokenError(failure?.status ?? 400, failure?.body));
      }
      return request(nonce);
    }
    if (!inFlight) {
      noncesAnswered = 0;
      inFlight = request(null).finally(() => {
        inFlight = undefined;
      });
    }
    return inFlight;
  };
}

/** Fetches an access token now: the first step of `integration test` for a service app. */
export async function requestAccessToken(client: Client): Promise<void> {
  const oauth = (client as unknown as { oauth?: SdkOAuth }).oauth;
  await oauth?.getAccessToken();
}
