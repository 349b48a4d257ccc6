import { type Server, type Socket, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthentikConnector } from '../../src/connectors/authentik/authentik.connector.js';
import { IdpReadError } from '../../src/connectors/connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import { type Egress, EgressRefusedError, egressRefusalMessage, nonPublicRange } from '../../src/egress.js';
import { checkConnection } from '../../src/integrations/connection-check.js';
import { egressWithHosts, loopbackEgress, strictEgress } from '../support/egress.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';

// Egress rules (SPEC "Operator safety"): no IdP request reaches a loopback, private, link-local
// or metadata address unless DIRSYNC_ALLOW_PRIVATE_NETWORK=true, judged on the address the
// socket would connect to. Names are resolved by the tests' own resolver (no DNS), and every
// address a name maps to here is refused before a socket opens: nothing leaves loopback.

const FAST_RETRY = { retries: 2, minTimeoutMs: 5, maxTimeoutMs: 10 };
const REFUSED = (host: string) =>
  `${host} resolves to a loopback, private, link-local or other non-public address, which dirsync does not connect to; set DIRSYNC_ALLOW_PRIVATE_NETWORK=true for IdPs and event endpoints on a private network`;

let okta: FakeOkta;
let authentik: FakeAuthentik;
/** A port on 127.0.0.1 that counts the connections made to it (and closes them). */
let listener: Server;
let connections = 0;
const sockets = new Set<Socket>();
let openPort: number;
/** A port on 127.0.0.1 that nothing listens on. */
let closedPort: number;

beforeAll(async () => {
  okta = await new FakeOkta().start();
  okta.addUser('ann@egress.test');
  authentik = await new FakeAuthentik().start();
  authentik.addUser('ann@egress.test');
  listener = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  openPort = (listener.address() as AddressInfo).port;
  const closing = createServer();
  await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
  closedPort = (closing.address() as AddressInfo).port;
  await new Promise((resolve) => closing.close(resolve));
});

afterAll(async () => {
  await okta?.stop();
  await authentik?.stop();
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => listener?.close(resolve));
});

const oktaConnector = (orgUrl: string, egress: Egress) =>
  new OktaConnector({ orgUrl, credentials: { kind: 'token', token: okta.token }, egress, retry: FAST_RETRY });
const authentikConnector = (baseUrl: string, egress: Egress) => new AuthentikConnector({ baseUrl, token: authentik.token, egress, retry: FAST_RETRY });

/** The IdpReadError a read failed with. */
async function readFailure(read: Promise<unknown>): Promise<IdpReadError> {
  const error = await read.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdpReadError);
  return error as IdpReadError;
}

describe('which addresses are refused', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:a00:1', 'private'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'linkLocal'],
    ['not an address', 'invalid'],
  ])('%s is refused (%s)', (address, range) => {
    expect(nonPublicRange(address)).toBe(range);
  });

  it.each(['8.8.8.8', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])('%s is public', (address) => {
    expect(nonPublicRange(address)).toBeUndefined();
  });
});

describe('the lookup every connection uses', () => {
  const lookup = (egress: Egress, host: string) =>
    promisify(egress.lookup as (h: string, o: object, cb: (e: Error | null, a: unknown) => void) => void)(host, { all: true });

  it('refuses a name any of whose addresses is not public, and passes public ones', async () => {
    const egress = egressWithHosts({ 'public.test': '93.184.216.34', 'loop.test': '127.0.0.1', 'mixed.test': ['93.184.216.34', '10.0.0.7'], 'meta.test': '169.254.169.254', 'mapped.test': '::ffff:127.0.0.1' });
    await expect(lookup(egress, 'public.test')).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    for (const host of ['loop.test', 'mixed.test', 'meta.test', 'mapped.test']) {
      await expect(lookup(egress, host)).rejects.toThrow(new EgressRefusedError(host).message);
    }
    // DIRSYNC_ALLOW_PRIVATE_NETWORK=true: answered as resolved.
    await expect(lookup(egressWithHosts({ 'loop.test': '127.0.0.1' }, true), 'loop.test')).resolves.toEqual([{ address: '127.0.0.1', family: 4 }]);
  });

  it('checks each connection, so a name that rebinds to 127.0.0.1 after a public answer is refused when the socket connects', async () => {
    let answers = 0;
    const egress = egressWithHosts({ 'rebind.test': () => (answers++ === 0 ? '93.184.216.34' : '127.0.0.1') });
    // What a check of the name before connecting would have seen (nothing connects to it here).
    await expect(lookup(egress, 'rebind.test')).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    const before = connections;
    const error = await readFailure(oktaConnector(`http://rebind.test:${openPort}`, egress).readSnapshot());
    expect(error.problem).toEqual({ kind: 'private-address', message: REFUSED('rebind.test') });
    expect(egress.asked).toEqual(['rebind.test', 'rebind.test']);
    expect(connections).toBe(before);
  });
});

describe('IdP requests', () => {
  // Each name points at a port on 127.0.0.1 that counts connections, or at a private or metadata address.
  const hosts = () => ({ 'loop.test': '127.0.0.1', 'ten.test': '10.20.30.40', 'metadata.test': '169.254.169.254' });
  const cases = (port: () => number) => [
    ['loop.test', () => `http://loop.test:${port()}`],
    ['ten.test', () => 'https://ten.test'],
    ['metadata.test', () => 'http://metadata.test'],
  ] as const;

  it.each(cases(() => openPort))('Okta: %s is refused before connecting, once, in one sentence', async (host, url) => {
    const egress = egressWithHosts(hosts());
    const before = connections;
    const error = await readFailure(oktaConnector(url(), egress).readSnapshot());
    expect(error.problem).toEqual({ kind: 'private-address', message: REFUSED(host) });
    expect(error.message).toBe(`Okta GET /api/v1/users was not sent: ${REFUSED(host)}`);
    // Not retried: the answer would be the same.
    expect(egress.asked).toEqual([host]);
    expect(connections).toBe(before);
  });

  it.each(cases(() => openPort))('authentik: %s is refused before connecting, once, in one sentence', async (host, url) => {
    const egress = egressWithHosts(hosts());
    const before = connections;
    const error = await readFailure(authentikConnector(url(), egress).readSnapshot());
    expect(error.problem).toEqual({ kind: 'private-address', message: REFUSED(host) });
    expect(error.message).toBe(`authentik GET /api/v3/core/users/?page=1 was not sent: ${REFUSED(host)}`);
    expect(egress.asked).toEqual([host]);
    expect(connections).toBe(before);
  });

  it('refuses literal addresses, which skip the lookup, for Okta (node-fetch) and authentik (fetch)', async () => {
    const before = connections;
    for (const host of ['127.0.0.1', '[::1]']) {
      const url = `http://${host}:${openPort}`;
      const literal = `${host} is a loopback, private, link-local or other non-public address, which dirsync does not connect to; set DIRSYNC_ALLOW_PRIVATE_NETWORK=true for IdPs and event endpoints on a private network`;
      expect(egressRefusalMessage(host)).toBe(literal);
      expect((await readFailure(oktaConnector(url, strictEgress).readSnapshot())).problem).toEqual({ kind: 'private-address', message: literal });
      expect((await readFailure(authentikConnector(url, strictEgress).readSnapshot())).problem).toEqual({ kind: 'private-address', message: literal });
    }
    expect(connections).toBe(before);
  });

  it('reads the loopback fake IdPs with DIRSYNC_ALLOW_PRIVATE_NETWORK=true, by name and by address', async () => {
    const port = (url: string) => new URL(url).port;
    const named = egressWithHosts({ 'okta.test': '127.0.0.1', 'ak.test': '127.0.0.1' }, true);
    expect((await oktaConnector(`http://okta.test:${port(okta.url)}`, named).readSnapshot()).users.size).toBe(1);
    expect((await authentikConnector(`http://ak.test:${port(authentik.url)}`, named).readSnapshot()).users.size).toBe(1);
    expect((await oktaConnector(okta.url, loopbackEgress).readSnapshot()).users.size).toBe(1);
    expect((await authentikConnector(authentik.url, loopbackEgress).readSnapshot()).users.size).toBe(1);
  });
});

describe('integration test against a refused address', () => {
  const target = (baseUrl: string) => ({ id: '00000000-0000-4000-8000-00000000e9e5', provider: 'okta' as const, baseUrl, oktaAppId: null, authentikApp: null });

  it('answers the same whether the port is open, closed or not speaking TLS, and tries nothing after the first endpoint', async () => {
    const reports = await Promise.all(
      [`https://127.0.0.1:${closedPort}`, `https://127.0.0.1:${openPort}`, `https://127.0.0.1:${new URL(okta.url).port}`, `http://127.0.0.1:${new URL(okta.url).port}`].map((url) =>
        checkConnection(target(url), { kind: 'token', token: okta.token }, strictEgress),
      ),
    );
    const first = reports[0]!;
    expect(first.ok).toBe(false);
    expect(first.checks[0]).toEqual({
      endpoint: 'GET /api/v1/users',
      ok: false,
      problem: 'private-address',
      message: egressRefusalMessage('127.0.0.1'),
    });
    expect(first.checks.slice(1).every((c) => !c.ok && c.problem === 'not-checked')).toBe(true);
    for (const report of reports) expect(report).toEqual(first);
  });

  it('connects to the fake IdP with DIRSYNC_ALLOW_PRIVATE_NETWORK=true', async () => {
    expect((await checkConnection(target(okta.url), { kind: 'token', token: okta.token }, loopbackEgress)).ok).toBe(true);
  });
});
