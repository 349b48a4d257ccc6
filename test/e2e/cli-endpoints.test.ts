import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import { pushUser } from '../support/scim-push.js';

// `dirsync endpoint ...` as SPEC gives it, with `dirsync start` delivering: a host-app
// developer registers an endpoint, pushes a change, and receives the event signed.
const cli = new CliHarness();
let scim: { id: string; scimBaseUrl: string; scimToken: string };
const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dirsync-events`;
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'hooli']);
  scim = await cli.json(['integration', 'create', '--tenant', 'hooli', '--provider', 'scim']);
}, 60_000);
afterAll(async () => {
  await cli.stop();
  await new Promise((resolve) => server.close(resolve));
});

const push = (userName: string) => pushUser(scim, userName);

async function until<T>(what: string, probe: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('dirsync endpoint', () => {
  it('creates an endpoint that `dirsync start` delivers events to, signed, and lists its deliveries', async () => {
    const created = await cli.json<{ id: string; url: string; secret: string; tenant: string; enabled: boolean }>(['endpoint', 'create', '--url', url, '--tenant', 'hooli']);
    expect(created).toMatchObject({ url, tenant: 'hooli', enabled: true, secret: expect.stringMatching(/^whsec_/) });
    await cli.start();
    const started = Date.now();
    await push('gavin@hooli.test');
    const delivery = await until('the event delivery', () => received.find((r) => r.body.includes('gavin@hooli.test')));
    const seconds = (Date.now() - started) / 1000;
    const event = new Webhook(created.secret).verify(delivery.body, {
      'webhook-id': String(delivery.headers['webhook-id']),
      'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
      'webhook-signature': String(delivery.headers['webhook-signature']),
    }) as { type: string; tenant: string; id: string };
    expect(event).toMatchObject({ type: 'user.created', tenant: 'hooli' });
    expect(seconds).toBeLessThan(30);

    const shown = await cli.json<{ endpoint: { id: string }; deliveries: Array<{ eventId: string; status: string; attempts: number; lastStatusCode: number }> }>(['endpoint', 'deliveries', created.id]);
    expect(shown.deliveries).toEqual([expect.objectContaining({ eventId: event.id, status: 'delivered', attempts: 1, lastStatusCode: 200 })]);
    expect((await cli.json<Array<{ id: string }>>(['endpoint', 'list'])).map((e) => e.id)).toEqual([created.id]);
    expect(JSON.stringify(await cli.json(['endpoint', 'show', created.id]))).not.toContain(created.secret);

    // Replay from the start: the same event again, same webhook-id.
    const before = received.length;
    expect((await cli.run(['endpoint', 'replay', created.id, '--after', '0.0'])).code).toBe(0);
    const again = await until('the replayed delivery', () => received.slice(before).find((r) => r.headers['webhook-id'] === event.id));
    expect(again.body).toBe(delivery.body);

    const rotated = await cli.json<{ secret: string; previousSecretValidUntil: string | null }>(['endpoint', 'rotate-secret', created.id, '--grace', '0']);
    expect(rotated.secret).not.toBe(created.secret);
    expect(rotated.previousSecretValidUntil).toBeNull();
    expect((await cli.run(['endpoint', 'delete', created.id])).code).toBe(0);
    expect(await cli.json(['endpoint', 'list'])).toEqual([]);
  }, 90_000);

  it('answers bad input in one sentence', async () => {
    for (const [args, message] of [
      [['endpoint', 'create', '--url', 'ftp://x.test'], /--url must be an http\(s\) URL/],
      [['endpoint', 'create', '--url', url, '--types', 'user.nope'], /user.nope is not an event type/],
      [['endpoint', 'show', '00000000-0000-4000-8000-000000000000'], /endpoint .* does not exist/],
      [['endpoint', 'replay', '00000000-0000-4000-8000-000000000000', '--after', 'x'], /"x" is not an event cursor/],
      [['endpoint', 'rotate-secret', '00000000-0000-4000-8000-000000000000', '--grace', 'forever'], /--grace must be 0 or a duration/],
    ] as const) {
      const result = await cli.run([...args]);
      expect([result.code, result.stderr.trim().split('\n').length], args.join(' ')).toEqual([1, 1]);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
  }, 60_000);
});
