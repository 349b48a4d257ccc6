import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { type LookupFunction, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import ipaddr from 'ipaddr.js';
import type { Dispatcher, buildConnector } from 'undici';
import type { Config } from './config.js';

// undici takes a third of a second to load, and most CLI commands never connect anywhere:
// it is loaded when a dispatcher is first asked for.
const require = createRequire(import.meta.url);

/**
 * Egress rules (SPEC "Operator safety"): dirsync's outbound requests (IdP APIs, event endpoints)
 * never go to loopback, private, link-local (cloud metadata included), unspecified, shared or
 * otherwise non-public addresses unless DIRSYNC_ALLOW_PRIVATE_NETWORK=true. The address is
 * checked when the socket connects, in its DNS lookup, so a name that resolved to a public
 * address once and to 127.0.0.1 later (DNS rebinding) is refused too; literal IPs, which skip
 * the lookup, are checked where the connection is made. This module owns the rule: the Okta
 * SDK (node-fetch 2) takes `agentFor`, fetch (undici) takes `dispatcher`, nothing else decides.
 */

/** The `code` of a refused connection, on the error (and kept by node-fetch's FetchError). */
export const EGRESS_REFUSED = 'EDIRSYNC_EGRESS_REFUSED';

/**
 * The ipaddr.js range (`loopback`, `private`, `linkLocal`, `uniqueLocal`, `carrierGradeNat`,
 * `unspecified`, `reserved`, ...) an address belongs to when dirsync does not connect to it,
 * or undefined for a public (`unicast`) address. IPv4-mapped IPv6 (::ffff:127.0.0.1) is
 * judged as the IPv4 address it carries, and so is NAT64's 64:ff9b::/96 (RFC 6052), which
 * IPv6-only networks use to reach public IPv4 hosts. Text that is not an address is refused.
 */
export function nonPublicRange(address: string): string | undefined {
  const text = address.replace(/^\[|\]$/g, '');
  if (!ipaddr.isValid(text)) return 'invalid';
  const parsed = ipaddr.process(text);
  const range = parsed.range();
  if (range === 'rfc6052' && parsed.kind() === 'ipv6') {
    const bytes = parsed.toByteArray();
    // Only the well-known /96 prefix carries the IPv4 address in its last 32 bits.
    if (bytes.slice(4, 12).every((b) => b === 0)) return nonPublicRange(bytes.slice(12).join('.'));
  }
  return range === 'unicast' ? undefined : range;
}

/**
 * The one sentence for a refused address, the same whatever listens there (the connection is
 * never made, so an open, closed, filtered or TLS-failing port all read alike). `host` is a
 * host name or a literal address.
 */
export function egressRefusalMessage(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  const what = isIP(bare) === 6 ? `[${bare}] is` : isIP(bare) ? `${bare} is` : `${host} resolves to`;
  return `${what} a loopback, private, link-local or other non-public address, which dirsync does not connect to; set DIRSYNC_ALLOW_PRIVATE_NETWORK=true for IdPs and event endpoints on a private network`;
}

/** A connection refused by the egress rules; `code` is EGRESS_REFUSED. */
export class EgressRefusedError extends Error {
  override name = 'EgressRefusedError';
  readonly code = EGRESS_REFUSED;
  constructor(readonly host: string) {
    super(egressRefusalMessage(host));
  }
}

/** Whether an error, or one of its causes (fetch's TypeError wraps undici's), is an egress refusal. */
export function isEgressRefusal(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code === EGRESS_REFUSED) return true;
  }
  return false;
}

/** What dirsync's HTTP clients connect through. */
export interface Egress {
  readonly allowPrivateNetwork: boolean;
  /** The lookup every connection uses: the system's (or a test's), refusing non-public answers unless allowed. */
  readonly lookup: LookupFunction;
  /** For node-fetch 2 (the Okta SDK): its `agent` option, an http or https agent by the URL's protocol. */
  agentFor(url: { protocol: string }): http.Agent;
  /** For fetch (undici): its `dispatcher` option. */
  readonly dispatcher: Dispatcher;
}

export interface EgressOptions {
  readonly allowPrivateNetwork: boolean;
  /** Resolves host names instead of dns.lookup (tests map names to addresses without DNS). */
  readonly lookup?: LookupFunction;
}

/** A refusal for a literal address that dirsync may not connect to, else undefined. */
function literalRefusal(host: string | null | undefined): EgressRefusedError | undefined {
  const bare = (host ?? '').replace(/^\[|\]$/g, '');
  return isIP(bare) && nonPublicRange(bare) !== undefined ? new EgressRefusedError(host!) : undefined;
}

/**
 * `base`, answering an error instead of any address set that holds a non-public address (one
 * bad answer among good ones is refused whole: the socket might pick it).
 */
function guardedLookup(base: LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, { ...options, all: true }, (error, answer) => {
      if (error) return callback(error, '');
      const addresses = Array.isArray(answer) ? answer : [{ address: answer, family: isIP(answer) }];
      if (addresses.some((a) => nonPublicRange(a.address) !== undefined)) return callback(new EgressRefusedError(hostname), '');
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/**
 * The HTTP clients' connection settings under the egress rules: an http and an https agent
 * (keep-alive, like Node's global agents) and an undici dispatcher, all resolving through one
 * lookup. With `allowPrivateNetwork` they connect anywhere, as Node's defaults do.
 */
export function createEgress(options: EgressOptions): Egress {
  const base = options.lookup ?? (dns.lookup as LookupFunction);
  const check = !options.allowPrivateNetwork;
  const lookup = check ? guardedLookup(base) : base;
  // Literal addresses never reach a lookup: refused where the socket would be created.
  const guard = <A extends http.Agent>(agent: A): A => {
    if (!check) return agent;
    const create = agent.createConnection.bind(agent) as (o: http.ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void) => Duplex | null | undefined;
    agent.createConnection = (connection, callback) => {
      const refused = literalRefusal(connection.host ?? connection.hostname);
      if (!refused) return create(connection, callback);
      // The agent reports this on the request as it would a failed connection.
      callback?.(refused, undefined as unknown as Duplex);
      return undefined;
    };
    return agent;
  };
  const httpAgent = guard(new http.Agent({ keepAlive: true, lookup }));
  const httpsAgent = guard(new https.Agent({ keepAlive: true, lookup }));
  let dispatcher: Dispatcher | undefined;
  const createDispatcher = (): Dispatcher => {
    const undici = require('undici') as typeof import('undici');
    const connect = undici.buildConnector({ lookup } as buildConnector.BuildOptions);
    return new undici.Agent({
      connect: (connection, callback) => {
        const refused = check ? literalRefusal(connection.hostname) : undefined;
        if (refused) return callback(refused, null);
        return connect(connection, callback);
      },
    });
  };
  return {
    allowPrivateNetwork: options.allowPrivateNetwork,
    lookup,
    agentFor: (url) => (url.protocol === 'http:' ? httpAgent : httpsAgent),
    get dispatcher() {
      return (dispatcher ??= createDispatcher());
    },
  };
}

const shared = new Map<boolean, Egress>();

/**
 * The process's egress for its configuration (DIRSYNC_ALLOW_PRIVATE_NETWORK): one per setting,
 * so every run and delivery shares the connection pools.
 */
export function egressFor(config: Pick<Config, 'allowPrivateNetwork'>): Egress {
  let egress = shared.get(config.allowPrivateNetwork);
  if (!egress) shared.set(config.allowPrivateNetwork, (egress = createEgress({ allowPrivateNetwork: config.allowPrivateNetwork })));
  return egress;
}
