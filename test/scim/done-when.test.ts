import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import {
  GROUP_SCHEMA,
  PATCH_SCHEMA,
  ScimClient,
  type ScimIntegration,
  USER_SCHEMA,
  createScimIntegration,
  expectListResponse,
  expectPatched,
  expectResource,
  expectStatus,
  filterQuery,
  sumCounts,
  tenantGroups,
  tenantUsers,
  waitForGroups,
  waitForIdle,
  waitForUser,
  waitForUsers,
} from './support.js';

// The feature's "Done when" walk, driven the way an admin and Okta drive it: create a scim integration,
// Okta's connector test, assign three users, push a group, deactivate one, reactivate, unpush the group.
// After each step: `dirsync users` / `dirsync groups` show what SPEC.md says, locks appear and lift, and
// `dirsync runs <id>` / `dirsync run show <run-id>` show trigger "scim" runs whose counts add up to the step.
// Request shapes: Okta SCIM 2.0 reference (okta/okta-developer-docs,
// packages/@okta/vuepress-site/docs/reference/scim/scim-20/index.md) as in okta-client.test.ts.
const cli = new CliHarness();
const TENANT = 'initech';
let integration: ScimIntegration;
let okta: ScimClient;
const people = [
  { userName: 'peter.gibbons@initech.test', given: 'Peter', family: 'Gibbons' },
  { userName: 'milton.waddams@initech.test', given: 'Milton', family: 'Waddams' },
  { userName: 'joanna.smith@initech.test', given: 'Joanna', family: 'Smith' },
];
const ids: string[] = [];
let groupId: string;
let seenRuns = new Set<string>();
let lastRunId: string;

/** Waits for the runs a step asked for to finish, and returns the runs that are new since the last step. */
async function stepRuns(): Promise<RunSummaryJson[]> {
  const all = await waitForIdle(cli, integration.id);
  const fresh = all.filter((r) => !seenRuns.has(r.id));
  seenRuns = new Set(all.map((r) => r.id));
  return fresh;
}

/** Every run a push asked for is a succeeded "scim" run, and their counts add up to the step. */
async function expectScimRuns(fresh: RunSummaryJson[], counts: Partial<typeof ZERO_COUNTS>): Promise<void> {
  expect(fresh.length, 'a push asks for a run').toBeGreaterThan(0);
  for (const r of fresh) expect(r, JSON.stringify(r)).toMatchObject({ trigger: 'scim', status: 'succeeded', dryRun: false, error: null });
  expect(sumCounts(fresh)).toEqual({ ...ZERO_COUNTS, ...counts });
  // `dirsync run show` says the same as `dirsync runs` (the newest run; each CLI call costs a second or two).
  const r = fresh[0]!;
  const shown = await cli.json<RunSummaryJson & { integrationId: string; mode: string; warnings: unknown[] }>(['run', 'show', r.id]);
  expect(shown, JSON.stringify(shown)).toMatchObject({ id: r.id, integrationId: integration.id, trigger: 'scim', status: 'succeeded', dryRun: false, counts: r.counts, warnings: [] });
  lastRunId = r.id;
}

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', TENANT]);
  await cli.start();
}, 60_000);

afterAll(async () => {
  await cli.stop();
});

describe('SCIM "Done when": an Okta app pushing to a scim integration', () => {
  it('creates a scim integration whose base URL and token pass Okta\'s connector test', async () => {
    integration = await createScimIntegration(cli, TENANT);
    okta = new ScimClient(integration.scimBaseUrl, integration.scimToken, { 'user-agent': 'Okta SCIM Client 1.0.0' });
    // The token is shown once: `integration show` never prints it (SPEC: credentials are never returned).
    const shown = await cli.run(['integration', 'show', integration.id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).not.toContain(integration.scimToken);
    expect(cli.serverLog).not.toContain(integration.scimToken);
    // Okta's connector test (Okta SCIM 1.1 reference; Delinea "Okta SCIM Endpoint Reference"): GET /Users?startIndex=1&count=2.
    expect(expectListResponse(await okta.get('/Users?startIndex=1&count=2'), 0)).toEqual([]);
    expect(expectListResponse(await okta.get('/Groups?startIndex=1&count=100'), 0)).toEqual([]);
    await stepRuns();
  });

  // Okta reference, "Determine if the User already exists" + "Create the User", once per assigned user.
  it('assigns three users: three active accounts, and scim runs that created three', async () => {
    for (const p of people) {
      expect(expectListResponse(await okta.get(`/Users${filterQuery(`userName eq "${p.userName}"`, '&startIndex=1&count=100')}`), 0)).toEqual([]);
      const res = await okta.post('/Users', {
        schemas: [USER_SCHEMA],
        userName: p.userName,
        name: { givenName: p.given, familyName: p.family },
        emails: [{ primary: true, value: p.userName, type: 'work' }],
        displayName: `${p.given} ${p.family}`,
        locale: 'en-US',
        groups: [],
        password: 'xT5pB2qq',
        active: true,
      });
      expectStatus(res, 201);
      ids.push(expectResource(res, 'User', integration.scimBaseUrl).id);
    }
    const users = await waitForUsers(cli, TENANT, 'the three assigned users', (us) => us.length === 3);
    expect(users.map((u) => u.userName).sort()).toEqual(people.map((p) => p.userName).sort());
    for (const p of people) {
      expect(users.find((u) => u.userName === p.userName)).toEqual({
        id: expect.any(String),
        userName: p.userName,
        email: p.userName,
        givenName: p.given,
        familyName: p.family,
        displayName: `${p.given} ${p.family}`,
        active: true,
        locked: false,
        groups: [],
      });
    }
    await expectScimRuns(await stepRuns(), { usersCreated: 3 });
  });

  // Okta reference, "Create Groups": POST /Groups with displayName and members.
  it('pushes a group with the three users: the tenant group and each account\'s groups', async () => {
    const res = await okta.post('/Groups', {
      schemas: [GROUP_SCHEMA],
      displayName: 'TPS Reports',
      members: people.map((p, i) => ({ value: ids[i], display: p.userName })),
    });
    expectStatus(res, 201);
    groupId = expectResource(res, 'Group', integration.scimBaseUrl).id;
    const groups = await waitForGroups(cli, TENANT, 'the pushed group with three members', (gs) => gs.length === 1 && gs[0]!.members.length === 3);
    expect(groups).toEqual([{ id: expect.any(String), name: 'TPS Reports', members: people.map((p) => p.userName).sort() }]);
    const users = await waitForUsers(cli, TENANT, 'the membership on each account', (us) => us.every((u) => u.groups.includes('TPS Reports')));
    for (const u of users) expect(u).toMatchObject({ active: true, locked: false, groups: ['TPS Reports'] });
    await expectScimRuns(await stepRuns(), { groupsCreated: 1, membershipsAdded: 3 });
  });

  // Okta reference, "Update a specific User (PATCH)": deactivation. SPEC: deprovisioned in the default mode
  // `suspend` (kept, inactive), a lock recorded; deprovisioning itself removes no membership, and the group
  // Okta still lists keeps the member (memberships mirror the IdP).
  it('deactivates one user: inactive and locked, still in the group; a run that deprovisioned one', async () => {
    const milton = people[1]!;
    const res = await okta.patch(`/Users/${ids[1]}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { active: false } }] });
    expectPatched(res, 'User', integration.scimBaseUrl);
    const users = await waitForUsers(cli, TENANT, 'the lock', (us) => us.some((u) => u.userName === milton.userName && u.locked));
    for (const u of users) {
      if (u.userName === milton.userName) expect(u).toMatchObject({ active: false, locked: true, groups: ['TPS Reports'] });
      else expect(u).toMatchObject({ active: true, locked: false, groups: ['TPS Reports'] });
    }
    expect((await tenantGroups(cli, TENANT))[0]!.members).toEqual(people.map((p) => p.userName).sort());
    await expectScimRuns(await stepRuns(), { usersDeprovisioned: 1 });
  });

  // Okta reference: activating a user is the same PATCH with active true. SPEC: reprovisioning lifts the lock.
  it('reactivates the user: active, lock lifted; a run that reprovisioned one', async () => {
    const milton = people[1]!;
    const res = await okta.patch(`/Users/${ids[1]}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { active: true } }] });
    expectPatched(res, 'User', integration.scimBaseUrl);
    const account = await waitForUser(cli, TENANT, milton.userName, 'the lock to lift', (u) => !u.locked);
    expect(account).toMatchObject({ active: true, locked: false, groups: ['TPS Reports'] });
    await expectScimRuns(await stepRuns(), { usersReprovisioned: 1 });
  });

  // SPEC, "Events": every applied change, from any source, is an event for the host app; user.deprovisioned
  // carries (mode, reason, lock), user.reprovisioned (lock lifted). `dirsync events --tenant <slug>` is in the
  // SPEC's command list.
  it('the deactivation and the reactivation reach the host app as events (dirsync events)', async () => {
    const milton = people[1]!;
    const { events } = await cli.json<{ events: { type: string; data: unknown }[] }>(['events', '--tenant', TENANT]);
    expect(events.some((e) => e.type === 'user.deprovisioned' && JSON.stringify(e.data).includes(milton.userName))).toBe(true);
    expect(events.some((e) => e.type === 'user.reprovisioned' && JSON.stringify(e.data).includes(milton.userName))).toBe(true);
  });

  // Okta reference, "Delete a specific Group": unlinking with "Delete the group in the target app" sends
  // DELETE /Groups/<id>. SPEC: the group and the memberships it takes with it go (each counted); an explicit
  // delete from the IdP is not an empty listing, and 1 group / 3 memberships is under the default threshold
  // (more than 20% *and* more than 5), so nothing is held. The users stay: the group was not their assignment.
  it('unpushes the group: the group and its memberships go, the users stay active', async () => {
    const res = await okta.delete(`/Groups/${groupId}`);
    expectStatus(res, 204);
    await waitForGroups(cli, TENANT, 'the group to go', (gs) => gs.length === 0);
    const users = await waitForUsers(cli, TENANT, 'no groups left on the accounts', (us) => us.every((u) => u.groups.length === 0));
    for (const u of users) expect(u).toMatchObject({ active: true, locked: false, groups: [] });
    await expectScimRuns(await stepRuns(), { groupsDeleted: 1, membershipsRemoved: 3 });
  });

  // SPEC, "Run summary": {"id","integrationId","trigger","mode","status",...} with mode one of full, incremental,
  // targeted; "targeted (named users or groups: an event, a push, or --user)". `run show` prints that summary.
  it('run show prints the summary with mode "targeted" for a scim run', async () => {
    const shown = await cli.json<{ trigger: string; mode?: string }>(['run', 'show', lastRunId]);
    expect(shown.trigger).toBe('scim');
    expect(shown.mode, `run show ${JSON.stringify(shown).slice(0, 400)}`).toBe('targeted');
  });

  // SPEC: `integration rotate-scim-token <id> [--grace DURATION]` -> {"id","scimToken",...}; with --grace 0 the
  // old token stops at once, with a grace it keeps working until then (as rotate-webhook-secret does).
  it('rotates the SCIM token: with --grace the old one still works, with --grace 0 it stops', async () => {
    const old = integration.scimToken;
    const graced = await cli.json<{ id: string; scimToken: string }>(['integration', 'rotate-scim-token', integration.id, '--grace', '1h']);
    expect(graced.id).toBe(integration.id);
    expect(graced.scimToken).not.toBe(old);
    expectStatus(await new ScimClient(integration.scimBaseUrl, old).get('/Users?startIndex=1&count=2'), 200);
    expectStatus(await new ScimClient(integration.scimBaseUrl, graced.scimToken).get('/Users?startIndex=1&count=2'), 200);

    const now = await cli.json<{ id: string; scimToken: string }>(['integration', 'rotate-scim-token', integration.id, '--grace', '0']);
    expectStatus(await new ScimClient(integration.scimBaseUrl, graced.scimToken).get('/Users?startIndex=1&count=2'), 401);
    expectStatus(await new ScimClient(integration.scimBaseUrl, old).get('/Users?startIndex=1&count=2'), 401);
    expectStatus(await new ScimClient(integration.scimBaseUrl, now.scimToken).get('/Users?startIndex=1&count=2'), 200);
    okta.token = now.scimToken;
  });

  // SPEC: "A disabled integration ... its webhook and SCIM endpoints reject every request"; the contract: 401/403.
  it('rejects every SCIM request while the integration is disabled, and serves again once enabled', async () => {
    expect((await cli.run(['integration', 'disable', integration.id])).code).toBe(0);
    for (const res of [
      await okta.get('/Users?startIndex=1&count=2'),
      await okta.get('/ServiceProviderConfig'),
      await okta.get(`/Users/${ids[0]}`),
      await okta.post('/Users', { schemas: [USER_SCHEMA], userName: 'bill.lumbergh@initech.test', active: true }),
      await okta.patch(`/Users/${ids[0]}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { active: false } }] }),
      await okta.delete(`/Users/${ids[2]}`),
    ]) {
      expect([401, 403], `${res.status} ${res.text}`).toContain(res.status);
    }
    expect((await cli.run(['integration', 'enable', integration.id])).code).toBe(0);
    expectStatus(await okta.get(`/Users/${ids[0]}`), 200);
    expectStatus(await okta.get(`/Users/${ids[2]}`), 200);
    // Nothing the disabled endpoint was sent was stored.
    expect(expectListResponse(await okta.get(`/Users${filterQuery('userName eq "bill.lumbergh@initech.test"')}`), 0)).toEqual([]);
    expect((await okta.get(`/Users/${ids[0]}`)).body.active).toBe(true);
  });
});
