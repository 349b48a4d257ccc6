import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import { pushUser } from '../support/scim-push.js';

// `dirsync events` as SPEC gives it: [--tenant] [--after CURSOR] [--limit N] [--follow] -> {"events":[...],"next":CURSOR}.
const cli = new CliHarness();
let scim: { id: string; scimBaseUrl: string; scimToken: string };
let follower: ChildProcess | undefined;

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'globex']);
  await cli.json(['tenant', 'create', 'other']);
  scim = await cli.json(['integration', 'create', '--tenant', 'globex', '--provider', 'scim']);
  await cli.start();
}, 60_000);
afterAll(async () => {
  follower?.kill('SIGKILL');
  await cli.stop();
});

const push = (userName: string) => pushUser(scim, userName);

/** Waits until the feed has the user's creation (a push applies through a queued run). */
async function waitForEvent(userName: string): Promise<void> {
  for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
    const page = await cli.json<{ events: Array<{ data: { account?: { userName: string } } }> }>(['events', '--tenant', 'globex', '--limit', '1000']);
    if (page.events.some((e) => e.data.account?.userName === userName)) return;
  }
  throw new Error(`no event for ${userName}`);
}

interface EventJson {
  id: string;
  cursor: string;
  type: string;
  tenant: string;
  integrationId: string;
  runId: string;
  occurredAt: string;
  data: { account?: { userName: string; id: string; personId: string } };
}

describe('dirsync events', () => {
  it('--follow prints each event as it commits, one JSON object per line, and stops on SIGTERM', async () => {
    await push('earlier@globex.test');
    await waitForEvent('earlier@globex.test');
    follower = spawn(process.execPath, [cli.bin, 'events', '--tenant', 'globex', '--follow', '--json'], { env: cli.env() });
    const lines: EventJson[] = [];
    let buffer = '';
    follower.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buffer.slice(0, nl)) as EventJson);
        buffer = buffer.slice(nl + 1);
      }
    });
    // It follows from the feed's end (an earlier event is not printed), once it says so on stderr.
    let stderr = '';
    follower.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    for (const until = Date.now() + 20_000; !stderr.includes('following') && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toMatch(/^following tenant globex's events after \S+ \(Ctrl-C stops\)\n$/);
    await push('ann@globex.test');
    const deadline = Date.now() + 30_000;
    while (!lines.some((e) => e.data.account?.userName === 'ann@globex.test') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const event = lines.find((e) => e.data.account?.userName === 'ann@globex.test');
    expect(event).toMatchObject({ type: 'user.created', tenant: 'globex', integrationId: scim.id, data: { account: { id: expect.any(String), personId: expect.any(String) } } });
    expect(Object.keys(event!).sort()).toEqual(['cursor', 'data', 'id', 'integrationId', 'occurredAt', 'runId', 'tenant', 'type']);
    expect(lines.filter((e) => e.data.account?.userName === 'earlier@globex.test')).toEqual([]);

    const exited = new Promise<number | null>((resolve) => follower!.once('exit', (code) => resolve(code)));
    follower.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);

  it('reads pages after a cursor, per tenant, and says in one sentence what is wrong with bad input', async () => {
    await push('bob@globex.test');
    let page = await cli.json<{ events: EventJson[]; next: string }>(['events', '--tenant', 'globex']);
    for (let i = 0; i < 50 && !page.events.some((e) => e.data.account?.userName === 'bob@globex.test'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      page = await cli.json(['events', '--tenant', 'globex']);
    }
    expect(page.events.map((e) => [e.type, e.data.account?.userName])).toEqual([
      ['user.created', 'earlier@globex.test'],
      ['user.created', 'ann@globex.test'],
      ['user.created', 'bob@globex.test'],
    ]);
    expect(page.next).toBe(page.events.at(-1)!.cursor);
    const one = await cli.json<{ events: EventJson[]; next: string }>(['events', '--tenant', 'globex', '--limit', '1']);
    expect(one.events.map((e) => e.id)).toEqual([page.events[0]!.id]);
    const rest = await cli.json<{ events: EventJson[]; next: string }>(['events', '--tenant', 'globex', '--after', one.next]);
    expect(rest.events.map((e) => e.id)).toEqual([page.events[1]!.id, page.events[2]!.id]);
    expect(await cli.json(['events', '--tenant', 'globex', '--after', page.next])).toEqual({ events: [], next: page.next });
    expect((await cli.json<{ events: unknown[] }>(['events', '--tenant', 'other'])).events).toEqual([]);

    for (const [args, message] of [
      [['events', '--after', 'yesterday'], /"yesterday" is not an event cursor/],
      [['events', '--tenant', 'nope'], /tenant "nope" does not exist/],
      [['events', '--limit', '0'], /--limit must be a whole number from 1 to 1000/],
      [['events', '--after', '99999999999.5'], /cursor 99999999999.5 is ahead of this feed, whose last event is at \d+\.\d+/],
    ] as const) {
      const result = await cli.run([...args]);
      expect([result.code, result.stderr.trim().split('\n').length], args.join(' ')).toEqual([1, 1]);
      expect(result.stderr).toMatch(message);
    }
  }, 60_000);
});
