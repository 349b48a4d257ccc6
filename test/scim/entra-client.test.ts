import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import {
  ENTERPRISE_USER_SCHEMA,
  GROUP_SCHEMA,
  PATCH_SCHEMA,
  ScimClient,
  type ScimIntegration,
  USER_SCHEMA,
  createScimIntegration,
  expectListResponse,
  expectPatched,
  expectResource,
  expectScimError,
  expectStatus,
  sortedMembers,
  waitForGroups,
  waitForUser,
} from './support.js';

// Microsoft Entra ID's provisioning service, replayed request by request against `dirsync start`.
// Sources (repo MicrosoftDocs/entra-docs):
// - docs/identity/app-provisioning/use-scim-to-provision-users-and-groups.md, "SCIM protocol requests and
//   responses" (https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups):
//   Create User / Get User by query / Update User (op "Replace") / Disable User / Delete User; Create Group /
//   Get Group by displayName (excludedAttributes=members) / Update Group / Add and Remove Members / Delete Group.
// - docs/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility.md ("Known issues
//   ... SCIM 2.0 protocol compliance"): without the aadOptscim062020 flag Entra disables a user with
//   {"op":"Replace","path":"active","value":"False"} (a string), adds with "Add", and removes a member with
//   {"op":"Remove","path":"members","value":[{"value":"u1091"}]}; with it, several attributes are replaced in
//   one op without a path, whose value keys are attribute paths ("name.givenName").
const cli = new CliHarness();
const TENANT = 'entra-scim';
let integration: ScimIntegration;
let entra: ScimClient;

const eve = { userName: 'eve.adams@entra-scim.test', objectId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef' };
const gus = { userName: 'gus.grant@entra-scim.test', objectId: '6c75de36-30fa-4d2d-a196-6bdcdb6b6539' };
const ids: Record<string, string> = {};
let groupId: string;

/** Entra's query string, as logged in MicrosoftDocs/azure-docs issue #94189: `?filter=userName+eq+%22...%22`. */
const entraFilter = (filter: string) => `?${new URLSearchParams({ filter }).toString()}`;

/** Entra's "Create User" request body, with this user's values. */
function entraCreateBody(u: typeof eve, given: string, family: string) {
  return {
    schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
    externalId: u.objectId,
    userName: u.userName,
    active: true,
    emails: [{ primary: true, type: 'work', value: u.userName }],
    meta: { resourceType: 'User' },
    name: { formatted: `${given} ${family}`, familyName: family, givenName: given },
    roles: [],
  };
}

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', TENANT]);
  await cli.start();
  integration = await createScimIntegration(cli, TENANT);
  // MicrosoftDocs/azure-docs issue #12728: Entra's requests carry `Content-Type: application/scim+json; charset=utf-8`.
  entra = new ScimClient(integration.scimBaseUrl, integration.scimToken, { 'content-type': 'application/scim+json; charset=utf-8' });
}, 60_000);

afterAll(async () => {
  await cli.stop();
});

describe('Microsoft Entra provisioning service, replayed', () => {
  // Entra doc, "Get User by query - Zero results" then "Create User": GET /Users?filter=userName eq "..." answers
  // a ListResponse with totalResults 0; POST /Users (core + enterprise extension schemas, externalId, meta,
  // roles []) answers 201 with the user.
  it('queries by userName, finds nothing, and creates the user', async () => {
    const none = await entra.get(`/Users${entraFilter(`userName eq "${eve.userName}"`)}`);
    expect(expectListResponse(none, 0)).toEqual([]);
    const res = await entra.post('/Users', entraCreateBody(eve, 'Eve', 'Adams'));
    expectStatus(res, 201);
    const r = expectResource(res, 'User', integration.scimBaseUrl);
    expect(r).toMatchObject({ userName: eve.userName, externalId: eve.objectId, active: true, name: { givenName: 'Eve', familyName: 'Adams' } });
    ids.eve = r.id;
    const found = await entra.get(`/Users${entraFilter(`userName eq "${eve.userName}"`)}`);
    expect(expectListResponse(found, 1)[0].id).toBe(ids.eve);
    const account = await waitForUser(cli, TENANT, eve.userName, 'the created user in the tenant', () => true);
    expect(account).toMatchObject({ userName: eve.userName, email: eve.userName, givenName: 'Eve', familyName: 'Adams', active: true, locked: false });
  });

  // Entra doc, "Update User [Multi-valued properties]": PATCH with op "Replace" (RFC 7644 §3.5.2 spells the ops
  // "add", "remove", "replace"; Entra's default job capitalises them), paths `emails[type eq "work"].value` and
  // `name.familyName`.
  it('applies "Replace" ops on emails[type eq "work"].value and name.familyName', async () => {
    const res = await entra.patch(`/Users/${ids.eve}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [
        { op: 'Replace', path: 'emails[type eq "work"].value', value: 'eve.new@entra-scim.test' },
        { op: 'Replace', path: 'name.familyName', value: 'Adams-Baker' },
      ],
    });
    const r = expectPatched(res, 'User', integration.scimBaseUrl);
    if (r) expect(r).toMatchObject({ name: { familyName: 'Adams-Baker', givenName: 'Eve' }, emails: [{ value: 'eve.new@entra-scim.test', type: 'work', primary: true }] });
    const got = await entra.get(`/Users/${ids.eve}`);
    expect(got.body).toMatchObject({ userName: eve.userName, name: { familyName: 'Adams-Baker', givenName: 'Eve' }, emails: [{ value: 'eve.new@entra-scim.test', type: 'work', primary: true }] });
    const account = await waitForUser(cli, TENANT, eve.userName, 'the new email and family name', (u) => u.familyName === 'Adams-Baker');
    expect(account).toMatchObject({ email: 'eve.new@entra-scim.test', familyName: 'Adams-Baker', givenName: 'Eve', active: true });
  });

  // Compatibility doc, "Requests to replace multiple attributes", with the flag: one op without a path whose
  // value keys are attribute paths: {"op":"replace","value":{"displayName":..,"name.givenName":..,"name.familyName":..}}.
  // RFC 7644 §3.5.2.3: without a path, the value's attributes replace the resource's.
  it('applies a replace without a path whose value keys are attribute paths (name.givenName)', async () => {
    const res = await entra.patch(`/Users/${ids.eve}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [{ op: 'replace', value: { displayName: 'Evelyn Baker', 'name.givenName': 'Evelyn', 'name.familyName': 'Baker' } }],
    });
    expectPatched(res, 'User', integration.scimBaseUrl);
    const got = await entra.get(`/Users/${ids.eve}`);
    expect(got.body).toMatchObject({ displayName: 'Evelyn Baker', name: { givenName: 'Evelyn', familyName: 'Baker' } });
    // The dotted keys are paths, not new attributes.
    expect(got.body).not.toHaveProperty(['name.givenName']);
    const account = await waitForUser(cli, TENANT, eve.userName, 'the pathless replace', (u) => u.givenName === 'Evelyn');
    expect(account).toMatchObject({ displayName: 'Evelyn Baker', givenName: 'Evelyn', familyName: 'Baker', email: 'eve.new@entra-scim.test' });
  });

  // Compatibility doc, "Requests made to disable users", without the feature flag (Entra's default):
  // {"op":"Replace","path":"active","value":"False"}: a capitalised op and a string boolean. It means
  // active=false; accepting it as anything else (or ignoring it) would leave a leaver active.
  it('disables on {"op":"Replace","path":"active","value":"False"}: suspended and locked', async () => {
    const res = await entra.patch(`/Users/${ids.eve}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
    const r = expectPatched(res, 'User', integration.scimBaseUrl);
    // RFC 7643 §4.1.1: active is a Boolean; the stored value is the boolean false, not the string.
    if (r) expect(r.active).toBe(false);
    expect((await entra.get(`/Users/${ids.eve}`)).body.active).toBe(false);
    const account = await waitForUser(cli, TENANT, eve.userName, 'the disable to lock the account', (u) => u.locked);
    expect(account).toMatchObject({ active: false, locked: true });
  });

  // The same unflagged shape with "True" (the compatibility doc shows only "False"; "True" is its counterpart,
  // which Entra's default job sends when the user is enabled or assigned again): the lock is lifted.
  it('re-enables on {"op":"Replace","path":"active","value":"True"}: the lock is lifted', async () => {
    const res = await entra.patch(`/Users/${ids.eve}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'Replace', path: 'active', value: 'True' }] });
    const r = expectPatched(res, 'User', integration.scimBaseUrl);
    if (r) expect(r.active).toBe(true);
    expect((await entra.get(`/Users/${ids.eve}`)).body.active).toBe(true);
    const account = await waitForUser(cli, TENANT, eve.userName, 'the lock to lift', (u) => !u.locked);
    expect(account).toMatchObject({ active: true, locked: false });
  });

  // Entra doc, "Disable User": {"op":"Replace","path":"active","value":false} (a JSON boolean, Operations before
  // schemas); the compatibility doc's flagged form re-enables with {"op":"replace","path":"active","value":true}.
  it('disables on {"op":"Replace","path":"active","value":false} and re-enables on {"op":"replace","path":"active","value":true}', async () => {
    const off = await entra.patch(`/Users/${ids.eve}`, { Operations: [{ op: 'Replace', path: 'active', value: false }], schemas: [PATCH_SCHEMA] });
    expectPatched(off, 'User', integration.scimBaseUrl);
    expect(await waitForUser(cli, TENANT, eve.userName, 'locked again', (u) => u.locked)).toMatchObject({ active: false, locked: true });
    const on = await entra.patch(`/Users/${ids.eve}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: true }] });
    expectPatched(on, 'User', integration.scimBaseUrl);
    expect((await entra.get(`/Users/${ids.eve}`)).body.active).toBe(true);
    expect(await waitForUser(cli, TENANT, eve.userName, 'unlocked again', (u) => !u.locked)).toMatchObject({ active: true, locked: false });
  });

  // SPEC "Events": every applied change is an event. A leaver whose mail changes as they are disabled reaches
  // Entra's job as one PATCH with both ops (the shapes above, together): the host app hears the email change
  // with its previous and new value, then the deprovision, both describing the account after the edit; and
  // back again on re-enable.
  it('hears an email change that comes with a disable (one PATCH) as user.updated, then user.deprovisioned; and back', async () => {
    type Event = { type: string; data: { account?: { externalId?: string; email?: string; active?: boolean; locked?: boolean }; changes?: { email?: { previous: unknown; new: unknown } } } };
    const eveEvents = async () => (await cli.json<{ events: Event[] }>(['events', '--tenant', TENANT, '--limit', '1000'])).events.filter((e) => e.data.account?.externalId === ids.eve);
    // Entra's unflagged shapes, both ops in one PATCH.
    const replaceEmailAndActive = async (email: string, active: 'True' | 'False') =>
      expectPatched(
        await entra.patch(`/Users/${ids.eve}`, {
          schemas: [PATCH_SCHEMA],
          Operations: [
            { op: 'Replace', path: 'emails[type eq "work"].value', value: email },
            { op: 'Replace', path: 'active', value: active },
          ],
        }),
        'User',
        integration.scimBaseUrl,
      );
    const before = (await eveEvents()).length;
    const leaving = 'eve.leaving@entra-scim.test';
    await replaceEmailAndActive(leaving, 'False');
    await waitForUser(cli, TENANT, eve.userName, 'the disable to lock the account', (u) => u.locked);
    const disabled = (await eveEvents()).slice(before);
    expect(disabled.map((e) => e.type)).toEqual(['user.updated', 'user.deprovisioned']);
    expect(disabled[0]!.data.changes?.email).toMatchObject({ new: leaving });
    for (const e of disabled) expect(e.data.account).toMatchObject({ email: leaving, active: false, locked: true });

    const back = 'eve.back@entra-scim.test';
    await replaceEmailAndActive(back, 'True');
    await waitForUser(cli, TENANT, eve.userName, 'the lock to lift', (u) => !u.locked);
    const enabled = (await eveEvents()).slice(before + 2);
    expect(enabled.map((e) => e.type)).toEqual(['user.updated', 'user.reprovisioned']);
    expect(enabled[0]!.data.changes?.email).toEqual({ previous: leaving, new: back });
    for (const e of enabled) expect(e.data.account).toMatchObject({ email: back, active: true, locked: false });
  });

  // Entra doc, "Create Group": POST /Groups with schemas [core Group, "http://schemas.microsoft.com/2006/11/
  // ResourceManagement/ADSCIM/2.0/Group"], externalId, displayName, meta; "Groups are created with an empty
  // members list". Then "Get Group by displayName": GET /Groups?excludedAttributes=members&filter=displayName eq "..."
  // and "Get Group": GET /Groups/{id}?excludedAttributes=members, without members.
  it('creates a group and finds it by displayName with excludedAttributes=members', async () => {
    const gusRes = await entra.post('/Users', entraCreateBody(gus, 'Gus', 'Grant'));
    expectStatus(gusRes, 201);
    ids.gus = gusRes.body.id;
    const res = await entra.post('/Groups', {
      schemas: [GROUP_SCHEMA, 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group'],
      externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
      displayName: 'Finance',
      meta: { resourceType: 'Group' },
    });
    expectStatus(res, 201);
    const g = expectResource(res, 'Group', integration.scimBaseUrl);
    expect(g).toMatchObject({ displayName: 'Finance', externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159' });
    groupId = g.id;

    const byName = await entra.get(`/Groups?excludedAttributes=members&${entraFilter('displayName eq "Finance"').slice(1)}`);
    const [found] = expectListResponse(byName, 1);
    expect(found).toMatchObject({ id: groupId, displayName: 'Finance' });
    expect(found).not.toHaveProperty('members');
    const one = await entra.get(`/Groups/${groupId}?excludedAttributes=members`);
    expectStatus(one, 200);
    expect(one.body).toMatchObject({ id: groupId, displayName: 'Finance' });
    expect(one.body).not.toHaveProperty('members');
    await waitForGroups(cli, TENANT, 'the empty group', (gs) => gs.some((x) => x.name === 'Finance'));
  });

  // Entra doc, "Update Group [Add Members]": {"op":"Add","path":"members","value":[{"$ref":null,"value":"<id>"}]}.
  it('adds members with "Add" and a null $ref', async () => {
    const res = await entra.patch(`/Groups/${groupId}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [{ op: 'Add', path: 'members', value: [{ $ref: null, value: ids.eve }, { $ref: null, value: ids.gus }] }],
    });
    expectPatched(res, 'Group', integration.scimBaseUrl);
    const got = await entra.get(`/Groups/${groupId}`);
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.eve, ids.gus].sort());
    const groups = await waitForGroups(cli, TENANT, 'two members', (gs) => sortedMembers(gs.find((x) => x.name === 'Finance')).length === 2);
    expect(groups).toEqual([{ id: expect.any(String), name: 'Finance', members: [eve.userName, gus.userName].sort() }]);
  });

  // Compatibility doc, "Requests made to remove a group member", without the flag (and the Entra doc's
  // "Update Group [Remove Members]"): {"op":"Remove","path":"members","value":[{"value":"<id>"}]}: the value
  // array names the member to remove (not "remove all members").
  it('removes only the named member on "Remove" path members with a value array', async () => {
    const res = await entra.patch(`/Groups/${groupId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'Remove', path: 'members', value: [{ $ref: null, value: ids.gus }] }] });
    expectPatched(res, 'Group', integration.scimBaseUrl);
    const got = await entra.get(`/Groups/${groupId}`);
    expect(got.body.members.map((m: { value: string }) => m.value)).toEqual([ids.eve]);
    const groups = await waitForGroups(cli, TENANT, 'gus removed, eve kept', (gs) => JSON.stringify(gs.find((x) => x.name === 'Finance')?.members) === JSON.stringify([eve.userName]));
    expect(groups).toEqual([{ id: expect.any(String), name: 'Finance', members: [eve.userName] }]);
  });

  // Entra doc, "Update Group [Non-member attributes]": {"op":"Replace","path":"displayName","value":"..."}; 204
  // is the answer Entra's doc shows (200 with the group is also RFC 7644 §3.5.2).
  it('renames a group with "Replace" path displayName', async () => {
    const res = await entra.patch(`/Groups/${groupId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'Replace', path: 'displayName', value: 'Finance EMEA' }] });
    expectPatched(res, 'Group', integration.scimBaseUrl);
    const groups = await waitForGroups(cli, TENANT, 'the rename', (gs) => gs.some((x) => x.name === 'Finance EMEA'));
    expect(groups).toEqual([{ id: expect.any(String), name: 'Finance EMEA', members: [eve.userName] }]);
  });

  // Entra doc, "Delete User" and "Delete Group": DELETE answers 204 No Content. dirsync contract: a DELETE of a
  // user deprovisions it per the mode with a lock.
  it('deletes a user and a group with DELETE: 204, then 404', async () => {
    const delUser = await entra.delete(`/Users/${ids.gus}`);
    expectStatus(delUser, 204);
    expectScimError(await entra.get(`/Users/${ids.gus}`), 404);
    expect(await waitForUser(cli, TENANT, gus.userName, 'gus locked', (u) => u.locked)).toMatchObject({ active: false, locked: true });

    const keep = await entra.post('/Groups', { schemas: [GROUP_SCHEMA], externalId: '60f1bb27-2e1e-402d-bcc4-ec999564a194', displayName: 'Legal', meta: { resourceType: 'Group' } });
    expectStatus(keep, 201);
    await waitForGroups(cli, TENANT, 'Legal', (gs) => gs.some((x) => x.name === 'Legal'));
    const delGroup = await entra.delete(`/Groups/${groupId}`);
    expectStatus(delGroup, 204);
    expectScimError(await entra.get(`/Groups/${groupId}`), 404);
    const groups = await waitForGroups(cli, TENANT, 'Finance EMEA gone', (gs) => !gs.some((x) => x.name === 'Finance EMEA'));
    expect(groups.map((g) => g.name)).toEqual(['Legal']);
  });
});
