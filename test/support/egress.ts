import type { LookupAddress } from 'node:dns';
import { type LookupFunction, isIP } from 'node:net';
import { type Egress, createEgress, egressFor } from '../../src/egress.js';

/** What DIRSYNC_ALLOW_PRIVATE_NETWORK=true gives: the fake IdPs and receivers listen on 127.0.0.1. */
export const loopbackEgress: Egress = egressFor({ allowPrivateNetwork: true });

/** The product's default: non-public addresses refused. */
export const strictEgress: Egress = egressFor({ allowPrivateNetwork: false });

/**
 * A resolver without DNS, as a hosts file would be: each name answers the addresses its entry
 * gives (a function is asked again at every lookup, for DNS rebinding). An unknown name fails
 * as ENOTFOUND. Records every name looked up in `asked`.
 */
export function fakeResolver(hosts: Record<string, string | string[] | (() => string | string[])>): LookupFunction & { asked: string[] } {
  const asked: string[] = [];
  const lookup = ((hostname, options, callback) => {
    asked.push(hostname);
    const entry = hosts[hostname];
    const answer = typeof entry === 'function' ? entry() : entry;
    if (answer === undefined) {
      const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
      return process.nextTick(() => callback(error, ''));
    }
    const addresses: LookupAddress[] = (Array.isArray(answer) ? answer : [answer]).map((address) => ({ address, family: isIP(address) }));
    process.nextTick(() => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)));
  }) as LookupFunction & { asked: string[] };
  lookup.asked = asked;
  return lookup;
}

/** An egress under the product's rules that resolves through `hosts` only (fakeResolver). */
export function egressWithHosts(hosts: Parameters<typeof fakeResolver>[0], allowPrivateNetwork = false): Egress & { asked: string[] } {
  const lookup = fakeResolver(hosts);
  return Object.assign(createEgress({ allowPrivateNetwork, lookup }), { asked: lookup.asked });
}
