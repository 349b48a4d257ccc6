import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { oktaDelivery } from '../support/webhook-bodies.js';

// `integration rotate-webhook-secret --grace` as automation calls it, against a running server.
const cli = new CliHarness();
const TOKEN = `okta-token-${randomBytes(8).toString('hex')}`;
const HOUR = 3_600_000;
const RULE = 'must be 0 or a duration of at most 30d, such as 15m, 1h or 7d';
let okta: FakeOkta;
let id: string;

interface Rotation {
  id: string;
  webhookSecret: string;
  previousWebhookSecretValidUntil: string | null;
}

beforeAll(async () => {
  okta = await new FakeOkta().start();
  okta.token = TOKEN;
  okta.addApp('0oaGrace');
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'acme']);
  id = (
    await cli.json<{ id: string }>(['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url, '--token', TOKEN, '--okta-app-id', '0oaGrace'])
  ).id;
  await cli.start();
}, 60_000);

afterAll(async () => {
  await okta?.stop();
  await cli.stop();
});

const rotate = (...options: string[]) => cli.json<Rotation>(['integration', 'rotate-webhook-secret', id, ...options]);
const validUntil = async () => (await cli.json<{ previousWebhookSecretValidUntil: string | null }>(['integration', 'show', id])).previousWebhookSecretValidUntil;
const deliver = async (secret: string) =>
  (
    await fetch(`http://127.0.0.1:${cli.port}/webhooks/${id}`, {
      method: 'POST',
      headers: { authorization: secret, 'content-type': 'application/json' },
      body: JSON.stringify(oktaDelivery([{ eventType: 'user.lifecycle.deactivate' }])),
    })
  ).status;
const fromNow = (iso: string | null) => new Date(iso!).getTime() - Date.now();

async function query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: cli.dbUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe('dirsync integration rotate-webhook-secret --grace', () => {
  it('says until when the old secret works, and ends with the new secret', async () => {
    const result = await cli.run(['integration', 'rotate-webhook-secret', id, '--grace', '2h']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    const until = /^the old webhook secret still works until (\S+): give the IdP the new one before then$/.exec(lines[0]!)?.[1];
    expect(fromNow(until ?? null)).toBeGreaterThan(2 * HOUR - 60_000);
    expect(lines[1]).toMatch(new RegExp(`^new webhook secret for ${id}: [A-Za-z0-9_-]{40,}$`));
    expect(await validUntil()).toBe(until);

    const none = await cli.run(['integration', 'rotate-webhook-secret', id, '--grace', '0']);
    expect(none.stdout).toMatch(new RegExp(`^the old webhook secret no longer works\nnew webhook secret for ${id}: [A-Za-z0-9_-]{40,}\n$`));
  });

  it('--json prints {id, webhookSecret, previousWebhookSecretValidUntil}; the old secret works until then, and not after', async () => {
    const { webhookSecret: old } = await rotate('--grace', '0');
    const rotation = await rotate('--grace', '1h');
    expect(Object.keys(rotation)).toEqual(['id', 'webhookSecret', 'previousWebhookSecretValidUntil']);
    expect(rotation.id).toBe(id);
    expect(fromNow(rotation.previousWebhookSecretValidUntil)).toBeGreaterThan(HOUR - 60_000);
    expect(await validUntil()).toBe(rotation.previousWebhookSecretValidUntil);
    expect(await deliver(old)).toBe(200);
    expect(await deliver(rotation.webhookSecret)).toBe(200);

    // The grace period ends (moved into the past rather than waited for).
    await query(`update integrations set webhook_secret_previous_expires_at = now() - interval '1 second' where id = $1`, [id]);
    expect(await deliver(old)).toBe(401);
    expect(await deliver(rotation.webhookSecret)).toBe(200);
    expect(await validUntil()).toBeNull();
  }, 30_000);

  it('--grace 0 stops the old secret at once', async () => {
    const { webhookSecret: old } = await rotate('--grace', '1h');
    const rotation = await rotate('--grace', '0');
    expect(rotation.previousWebhookSecretValidUntil).toBeNull();
    expect(await validUntil()).toBeNull();
    expect(await deliver(old)).toBe(401);
    expect(await deliver(rotation.webhookSecret)).toBe(200);
  });

  it('rotating twice within the window keeps only the secret just retired', async () => {
    const { webhookSecret: first } = await rotate('--grace', '0');
    const { webhookSecret: second } = await rotate('--grace', '1h');
    const third = await rotate('--grace', '1h');
    expect(await deliver(first)).toBe(401);
    expect(await deliver(second)).toBe(200);
    expect(await deliver(third.webhookSecret)).toBe(200);
  });

  it('defaults to DIRSYNC_WEBHOOK_SECRET_GRACE, else 24h', async () => {
    expect(fromNow((await rotate()).previousWebhookSecretValidUntil)).toBeGreaterThan(24 * HOUR - 60_000);
    const short = await cli.json<Rotation>(['integration', 'rotate-webhook-secret', id], { DIRSYNC_WEBHOOK_SECRET_GRACE: '30m' });
    expect(fromNow(short.previousWebhookSecretValidUntil)).toBeGreaterThan(30 * 60_000 - 60_000);
    expect(fromNow(short.previousWebhookSecretValidUntil)).toBeLessThanOrEqual(30 * 60_000);
  });

  it('refuses a bad --grace or DIRSYNC_WEBHOOK_SECRET_GRACE with one sentence, changing nothing', async () => {
    const before = await query<{ row: string }>(`select i::text as row from integrations i where id = $1`, [id]);
    for (const grace of ['soon', '1w', '31d', '-5m', '']) {
      const result = await cli.run(['integration', 'rotate-webhook-secret', id, '--grace', grace]);
      expect(result).toEqual({ code: 1, stdout: '', stderr: `dirsync: --grace ${RULE}, not "${grace}".\n` });
    }
    const env = await cli.run(['integration', 'rotate-webhook-secret', id], { DIRSYNC_WEBHOOK_SECRET_GRACE: 'later' });
    expect(env).toEqual({ code: 1, stdout: '', stderr: `dirsync: DIRSYNC_WEBHOOK_SECRET_GRACE ${RULE}, not "later".\n` });
    expect(await query(`select i::text as row from integrations i where id = $1`, [id])).toEqual(before);
  });

  it('explains --grace in its help', async () => {
    const help = await cli.run(['integration', 'rotate-webhook-secret', '--help']);
    expect(help.stdout).toMatch(/--grace <duration>/);
    expect(help.stdout).toMatch(/0 stops it at once/);
    expect(help.stdout).toMatch(/DIRSYNC_WEBHOOK_SECRET_GRACE/);
  });
});
