import { EgressRefusedError, egressRefusalMessage, isEgressRefusal } from '../egress.js';

/**
 * What went wrong talking to an IdP, in words an admin can act on. Shared by sync errors and
 * `integration test`, so a run fails with the same advice the check gives.
 */
export type ProblemKind =
  | 'wrong-url'
  /** The host is (or resolves to) an address dirsync does not connect to (src/egress.ts). */
  | 'private-address'
  | 'tls'
  | 'timeout'
  | 'unreachable'
  | 'unauthorized'
  | 'missing-scope'
  | 'forbidden'
  | 'not-found'
  | 'rate-limited'
  | 'idp-error'
  | 'bad-response';

export interface Problem {
  readonly kind: ProblemKind;
  readonly message: string;
}

const TLS_CODES: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a self-signed certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a known authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its certificate's issuer is not a known authority",
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another host name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'it does not speak TLS on this port (an http:// server?)',
};

/** The first `code` along an error's cause chain: node-fetch puts it on the error, undici on its cause. */
function codeOf(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** Failures below HTTP (DNS, TCP, TLS, timeouts), worded the same for every IdP. */
export function networkProblem(error: unknown, baseUrl: string): Problem | undefined {
  const host = hostOf(baseUrl);
  // Before any connection, so whatever listens there (or nothing) makes no difference to the words.
  // node-fetch (Okta) keeps only the code; fetch (authentik) keeps the error, naming a redirect's host.
  if (isEgressRefusal(error)) return { kind: 'private-address', message: refusalIn(error)?.message ?? egressRefusalMessage(hostnameOf(baseUrl)) };
  const code = codeOf(error);
  const name = (error as { name?: unknown; type?: unknown } | null)?.name;
  const type = (error as { type?: unknown } | null)?.type;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return { kind: 'wrong-url', message: `the host ${host} does not resolve: check --base-url` };
  }
  if (code === 'ECONNREFUSED') {
    return { kind: 'wrong-url', message: `nothing answers at ${baseUrl} (connection refused): check --base-url` };
  }
  if (code !== undefined && (code in TLS_CODES || /^ERR_(SSL|TLS)_|CERT/.test(code))) {
    const why = TLS_CODES[code] ?? code;
    return {
      kind: 'tls',
      message: `TLS failure talking to ${host}: ${why} (${code}); if a proxy inspects TLS here, give Node its CA with NODE_EXTRA_CA_CERTS`,
    };
  }
  if (name === 'TimeoutError' || type === 'request-timeout' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return { kind: 'timeout', message: `${host} did not answer in time: check --base-url and the network path to it` };
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return { kind: 'unreachable', message: `the connection to ${host} failed (${code}): check the network path to it` };
  }
  // JSON.parse's SyntaxError (fetch), or node-fetch 2's FetchError of type invalid-json (Okta SDK).
  if (error instanceof SyntaxError || type === 'invalid-json') {
    return { kind: 'bad-response', message: `the answer from ${host} is not JSON, so this is not the IdP's API: check --base-url` };
  }
  return undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function refusalIn(error: unknown): EgressRefusedError | undefined {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof EgressRefusedError) return e;
  return undefined;
}

function hostnameOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

/** "a", "a and b", "a, b and c". */
export function listOf(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}
