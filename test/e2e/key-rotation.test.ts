import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { DirsyncProcess } from '../support/processes.js';

// Rotating DIRSYNC_ENCRYPTION_KEY as README's "Rotating the encryption key" says, with the built
// CLI and a worker against a fake Okta: the worker syncs mid-rotation and after it.
const cli = new CliHarness();
const TOKEN = `okta-token-${randomBytes(8).toString('hex')}`;
const OLD_KEY = randomBytes(32).toString('base64');
const NEW_KEY = randomBytes(32).toString('base64');
const STRANGER_KEY = randomBytes(32).toString('base64');
const OLD = { DIRSYNC_ENCRYPTION_KEY: OLD_KEY };
const ROTATING = { DIRSYNC_ENCRYPTION_KEY: NEW_KEY, DIRSYNC_ENCRYPTION_KEY_PREVIOUS: OLD_KEY };
const NEW = { DIRSYNC_ENCRYPTION_KEY: NEW_KEY };

interface ReencryptJson {
  reencrypted: number;
  alreadyCurrent: number;
  failed: number;
  failures: { integrationId: string; reason: string }[];
}

let okta: FakeOkta;
let worker: DirsyncProcess | undefined;
let oktaId: string;
let strangerId: string;

beforeAll(async () => {
  okta = await new FakeOkta().start();
  okta.token = TOKEN;
  const app = okta.addApp('0oaRot');
  app.users.add(okta.addUser('ann.lee@rotation.test', { id: '00uAnn' }).id);
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'acme']);
  const create = (key: Record<string, string>) =>
    cli.json<{ id: string }>(['integration', 'create', '--tenant', 'acme', '--provider', 'okta', '--base-url', okta.url, '--token', TOKEN, '--okta-app-id', '0oaRot'], key);
  oktaId = (await create(OLD)).id;
  // Credentials sealed under a key nobody kept: what reencrypt must report, not choke on.
  strangerId = (await create({ DIRSYNC_ENCRYPTION_KEY: STRANGER_KEY })).id;
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await okta?.stop();
  await cli.stop();
});

async function syncWith(env: Record<string, string>): Promise<RunSummaryJson> {
  await worker?.stop();
  worker = await new DirsyncProcess(cli, 'worker', env).start();
  return cli.json<RunSummaryJson>(['sync', oktaId, '--wait']);
}

describe('rotating DIRSYNC_ENCRYPTION_KEY', () => {
  it('without DIRSYNC_ENCRYPTION_KEY_PREVIOUS, reencrypt says where the old key goes and exits 1', async () => {
    const result = await cli.run(['reencrypt', '--json'], NEW);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as ReencryptJson;
    expect(report).toMatchObject({ reencrypted: 0, alreadyCurrent: 0, failed: 2 });
    for (const failure of report.failures) {
      expect(failure.reason).toMatch(/different DIRSYNC_ENCRYPTION_KEY than the one configured: if the key was changed, put the old one in DIRSYNC_ENCRYPTION_KEY_PREVIOUS$/);
    }
  });

  it('refuses a malformed DIRSYNC_ENCRYPTION_KEY_PREVIOUS in one sentence', async () => {
    const result = await cli.run(['reencrypt'], { ...NEW, DIRSYNC_ENCRYPTION_KEY_PREVIOUS: `${OLD_KEY},oops` });
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toBe(
      'dirsync: DIRSYNC_ENCRYPTION_KEY_PREVIOUS has 2 comma-separated keys and key 2 is not 32 random bytes in base64, as `openssl rand -base64 32` prints.\n',
    );
  });

  it('a worker with the new key and the old one as previous syncs before anything is re-encrypted', async () => {
    const run = await syncWith(ROTATING);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1 });
  }, 120_000);

  it('reencrypt --json re-encrypts what it can, reports the rest and exits 1, then 0 once nothing fails', async () => {
    const first = await cli.run(['reencrypt', '--json'], ROTATING);
    expect(first.code).toBe(1);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout)).toEqual({
      reencrypted: 1,
      alreadyCurrent: 0,
      failed: 1,
      failures: [
        {
          integrationId: strangerId,
          reason: expect.stringMatching(/^stored credentials were encrypted with a key that is neither DIRSYNC_ENCRYPTION_KEY nor one of DIRSYNC_ENCRYPTION_KEY_PREVIOUS/),
        },
      ],
    });

    const asText = await cli.run(['reencrypt'], ROTATING);
    expect(asText.code).toBe(1);
    expect(asText.stdout).toMatch(/^re-encrypted 0, already current 1, failed 1\n/);
    expect(asText.stdout).toContain(strangerId);

    // The admin gives up on that integration; the next pass has nothing left to fail.
    expect((await cli.run(['integration', 'delete', strangerId, '--yes'], ROTATING)).code).toBe(0);
    const last = await cli.run(['reencrypt', '--json'], ROTATING);
    expect(last.code).toBe(0);
    expect(JSON.parse(last.stdout)).toEqual({ reencrypted: 0, alreadyCurrent: 1, failed: 0, failures: [] });
    expect(last.stdout + last.stderr).not.toContain(TOKEN);
  });

  it('a worker with the new key alone syncs afterwards; the old key alone no longer reads', async () => {
    okta.addUser('bob.king@rotation.test', { id: '00uBob' });
    okta.apps.get('0oaRot')!.users.add('00uBob');
    const run = await syncWith(NEW);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1 });

    // A worker left on the old key alone fails its runs saying so, without calling the IdP.
    const requests = okta.requests.length;
    await worker?.stop();
    worker = await new DirsyncProcess(cli, 'worker', OLD).start();
    const failed = await cli.run(['sync', oktaId, '--wait', '--json'], OLD);
    expect(failed.code).toBe(1);
    expect((JSON.parse(failed.stdout) as RunSummaryJson).error).toMatch(
      /^cannot read the integration's credentials: stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured/,
    );
    expect(okta.requests.length).toBe(requests);
  }, 120_000);
});
