import { type Problem, networkProblem } from '../problems.js';
import { statusOf } from '../retry.js';

export interface AuthentikContext {
  readonly baseUrl: string;
  /** e.g. GET /api/v3/core/users/?page=2 */
  readonly endpoint: string;
  readonly appSlug: string | null | undefined;
  /** authentik's `detail` from the error body, when it sent one. */
  readonly detail: string | undefined;
}

/** What an authentik failure means for the admin, or undefined when it is not one dirsync can explain. */
export function authentikProblem(error: unknown, ctx: AuthentikContext): Problem | undefined {
  const network = networkProblem(error, ctx.baseUrl);
  if (network) return network;
  const status = statusOf(error);
  if (status === undefined) return undefined;
  const said = ctx.detail ? ` (authentik: "${ctx.detail}")` : '';
  // authentik's API explains a refusal of a token, a permission or a path in a JSON `detail`;
  // one without it comes from another server. (Its 400s name fields instead: not judged here.)
  if ((status === 401 || status === 403 || status === 404) && ctx.detail === undefined) {
    return { kind: 'wrong-url', message: `${ctx.baseUrl} answered ${status} without authentik's error body, so it is not authentik's API: check --base-url is the authentik address, without /api/v3` };
  }
  if (status === 429) return { kind: 'rate-limited', message: 'authentik is rate-limiting these requests (429): wait and try again' };
  if (status >= 500) return { kind: 'idp-error', message: `authentik answered with a server error (${status}): try again later` };
  // authentik answers an unknown or expired token with 403, not 401; its detail tells them apart.
  if (status === 401 || (status === 403 && /token/i.test(ctx.detail ?? '') && /invalid|expired/i.test(ctx.detail ?? ''))) {
    return { kind: 'unauthorized', message: `authentik rejected the API token: it is invalid or expired${said}; create a new one (Directory > Tokens and App passwords)` };
  }
  if (status === 403) {
    return {
      kind: 'forbidden',
      message: `the token's user may not read this${said}: it needs permission to view users, groups, applications and policy bindings`,
    };
  }
  if (status === 404 && ctx.appSlug && ctx.endpoint.includes('/core/applications/')) {
    return { kind: 'not-found', message: `authentik has no application with slug "${ctx.appSlug}": check --authentik-app (the slug in the application's address)` };
  }
  if (status === 404) {
    return { kind: 'wrong-url', message: `${ctx.baseUrl} has no authentik API at /api/v3: check --base-url is the authentik address, without /api/v3` };
  }
  return undefined;
}
