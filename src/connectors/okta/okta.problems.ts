import type { CredentialKind } from '../../integrations/credentials.js';
import { type Problem, listOf, networkProblem } from '../problems.js';
import { statusOf } from '../retry.js';
import { OktaTokenError } from './okta.oauth.js';

export interface OktaContext {
  readonly orgUrl: string;
  /** e.g. /api/v1/apps/0oa1/users */
  readonly endpoint: string;
  readonly auth: CredentialKind;
  readonly appId: string | null | undefined;
  /** Scopes requested (service apps). */
  readonly scopes: readonly string[];
}

const CONSOLE_SCOPES = 'in the Okta Admin Console (Applications > the service app > Okta API Scopes)';

/** What an Okta failure means for the admin, or undefined when it is not one dirsync can explain. */
export function oktaProblem(error: unknown, ctx: OktaContext): Problem | undefined {
  if (error instanceof OktaTokenError) return tokenProblem(error, ctx);
  const network = networkProblem(error, ctx.orgUrl);
  if (network) return network;
  const status = statusOf(error);
  if (status === undefined) return undefined;
  const e = error as { errorCode?: string; headers?: { get?: (name: string) => string | null } };
  if (status === 429) return { kind: 'rate-limited', message: 'Okta is rate-limiting these requests (429): other clients are using up the org\'s rate limit; wait for it to reset and try again' };
  if (status >= 500) return { kind: 'idp-error', message: `Okta answered with a server error (${status}): try again later` };
  // Every refusal of Okta's API carries an Okta error code (E0000011, ...): one without is another server.
  if (!e.errorCode) return { kind: 'wrong-url', message: `${ctx.orgUrl} answered ${status} without an Okta error code, so it is not Okta's API: check --base-url is the Okta org URL` };
  if (status === 401) {
    return ctx.auth === 'token'
      ? { kind: 'unauthorized', message: 'Okta rejected the API token: it is invalid, expired or revoked (tokens lapse after 30 days unused); create a new one' }
      : { kind: 'unauthorized', message: 'Okta rejected the access token it issued to the service app: check that the app is active' };
  }
  if (status === 403) {
    const challenge = e.headers?.get?.('www-authenticate') ?? '';
    if (/insufficient_scope/.test(challenge)) {
      const scope = /scope="([^"]+)"/.exec(challenge)?.[1] ?? 'a scope';
      return { kind: 'missing-scope', message: `the access token lacks the scope ${scope}: grant it ${CONSOLE_SCOPES}` };
    }
    return ctx.auth === 'token'
      ? { kind: 'forbidden', message: "the API token's admin may not read this: the token needs an admin with read access to users, groups and apps (such as Read-Only Administrator)" }
      : { kind: 'forbidden', message: 'the service app may not read this: assign it an admin role that can (such as Read-Only Administrator) under its Admin roles tab' };
  }
  if (status === 404) {
    if (ctx.appId && ctx.endpoint.startsWith(`/api/v1/apps/${ctx.appId}`)) {
      return { kind: 'not-found', message: `Okta has no app with id ${ctx.appId}: check --okta-app-id (the 0oa… id in the app's Admin Console address)` };
    }
    if (e.errorCode === 'E0000007') return { kind: 'not-found', message: `Okta has no such resource (${ctx.endpoint}): it may have been deleted meanwhile` };
    return { kind: 'wrong-url', message: `${ctx.orgUrl} has no Okta API at ${ctx.endpoint}: check --base-url is the Okta org URL, such as https://example.okta.com` };
  }
  return undefined;
}

function tokenProblem(error: OktaTokenError, ctx: OktaContext): Problem {
  const code = error.body?.error;
  const description = error.body?.error_description;
  const quoted = description ? ` (Okta: "${description}")` : '';
  if (error.status === 429) return { kind: 'rate-limited', message: 'Okta is rate-limiting token requests (429): wait and try again' };
  if (error.status >= 500) return { kind: 'idp-error', message: `Okta's token endpoint answered with a server error (${error.status}): try again later` };
  if (code === 'invalid_scope') {
    // Okta names the scopes it refuses; fall back to those asked for if it does not.
    const named = [...new Set(description?.match(/okta\.[A-Za-z]+\.(read|manage)/g) ?? [])];
    const missing = named.length > 0 ? named : [...ctx.scopes];
    return {
      kind: 'missing-scope',
      message: `the service app is not granted the scope${missing.length === 1 ? '' : 's'} ${listOf(missing)}: grant ${missing.length === 1 ? 'it' : 'them'} ${CONSOLE_SCOPES}${quoted}`,
    };
  }
  if (code === 'invalid_client') {
    return {
      kind: 'unauthorized',
      message: `Okta rejected the service app's credentials${quoted}: check --okta-client-id, and that the public key registered on the app (and its key id) matches the private key`,
    };
  }
  if (code === 'unauthorized_client') {
    return { kind: 'unauthorized', message: `the app may not use the client credentials grant${quoted}: it must be an API Services app that authenticates with a public/private key` };
  }
  if (code === 'invalid_dpop_proof' || code === 'use_dpop_nonce') {
    return { kind: 'unauthorized', message: `Okta refused dirsync's DPoP proof${quoted}` };
  }
  if (error.status === 404) return { kind: 'wrong-url', message: `${ctx.orgUrl} has no Okta token endpoint: check --base-url is the Okta org URL` };
  return { kind: 'unauthorized', message: `Okta issued no access token (HTTP ${error.status}${code ? ` ${code}` : ''})${quoted}` };
}
