import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';

// The scim integration's commands, as automation calls them (SPEC "Interfaces").
const cli = new CliHarness();

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'initech']);
}, 60_000);
afterAll(() => cli.stop());

describe('dirsync integration commands for a scim integration', () => {
  it('creates one, printing the SCIM base URL and token once, and manages it', async () => {
    const created = await cli.json<Record<string, unknown>>(['integration', 'create', '--tenant', 'initech', '--provider', 'scim', '--deprovision', 'remove-access']);
    const id = created.id as string;
    expect(created).toMatchObject({ provider: 'scim', baseUrl: null, deprovisionMode: 'remove-access', scimBaseUrl: `http://127.0.0.1:${cli.port}/scim/v2/${id}` });
    expect(created.scimToken).toMatch(/^[\w-]{40,}$/);
    expect(created).not.toHaveProperty('webhookSecret');

    const shown = await cli.json<Record<string, unknown>>(['integration', 'show', id]);
    expect(shown).toMatchObject({ scimBaseUrl: created.scimBaseUrl, previousScimTokenValidUntil: null });
    expect(JSON.stringify(shown)).not.toContain(created.scimToken as string);

    const rotated = await cli.json<Record<string, unknown>>(['integration', 'rotate-scim-token', id, '--grace', '1h']);
    expect(rotated).toMatchObject({ id, previousScimTokenValidUntil: expect.any(String) });
    expect(rotated.scimToken).not.toBe(created.scimToken);
    const text = await cli.run(['integration', 'rotate-scim-token', id, '--grace', '0']);
    expect(text.stdout).toMatch(/the old SCIM token no longer works\nnew SCIM token for .*: [\w-]{40,}\n$/);

    expect((await cli.json<Record<string, unknown>>(['integration', 'update', id, '--threshold', '10'])).thresholdPercent).toBe(10);
  }, 60_000);

  it('refuses, in one sentence, what does not apply to a pushed integration', async () => {
    const { id } = await cli.json<{ id: string }>(['integration', 'create', '--tenant', 'initech', '--provider', 'scim']);
    const refusals: Array<[string[], RegExp]> = [
      [['integration', 'create', '--tenant', 'initech', '--provider', 'scim', '--base-url', 'https://x.okta.com', '--token', 't'], /--base-url, --token do not apply to a scim integration/],
      [['integration', 'create', '--tenant', 'initech', '--provider', 'scim', '--every', '1h'], /--every does not apply to a scim integration/],
      [['integration', 'update', id, '--cron', '0 * * * *'], /--cron does not apply to a scim integration/],
      [['integration', 'update', id], /nothing to update: give --deprovision or --threshold/],
      [['integration', 'test', id], /is a scim integration, which has no IdP endpoints to test/],
      [['integration', 'rotate-webhook-secret', id], /rotate its token with `dirsync integration rotate-scim-token`/],
      [['integration', 'rotate-scim-token', id, '--grace', 'forever'], /--grace must be 0 or a duration/],
      [['integration', 'create', '--tenant', 'initech', '--provider', 'scimm'], /--provider must be one of okta, authentik, scim/],
    ];
    for (const [args, message] of refusals) {
      const result = await cli.run(args);
      expect([result.code, result.stderr.trim().split('\n').length], args.join(' ')).toEqual([1, 1]);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
  }, 60_000);
});
