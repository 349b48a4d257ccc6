import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import {
  GROUP_SCHEMA,
  LIST_SCHEMA,
  PATCH_SCHEMA,
  ScimClient,
  type ScimIntegration,
  USER_SCHEMA,
  createScimIntegration,
  expectListResponse,
  expectPatched,
  expectResource,
  expectScimError,
  expectScimJson,
  expectStatus,
  filterQuery,
  sortedMembers,
  tenantGroups,
  waitForGroups,
  waitForUser,
} from './support.js';

// Okta's SCIM client, replayed request by request against `dirsync start`.
// Main source: Okta, "SCIM 2.0 Protocol Reference" (https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20,
// repo okta/okta-developer-docs, packages/@okta/vuepress-site/docs/reference/scim/scim-20/index.md).
const cli = new CliHarness();
const TENANT = 'okta-scim';
let integration: ScimIntegration;
let okta: ScimClient;
const OKTA_HEADERS = { 'user-agent': 'Okta SCIM Client 1.0.0' };

const ann = { userName: 'ann.lee@okta-scim.test', given: 'Ann', family: 'Lee', oktaId: '00uann00000000000001' };
const bob = { userName: 'bob.king@okta-scim.test', given: 'Bob', family: 'King', oktaId: '00ubob00000000000002' };
const cat = { userName: 'cat.ray@okta-scim.test', given: 'Cat', family: 'Ray', oktaId: '00ucat00000000000003' };
const ids: Record<string, string> = {};
let groupId: string;

/** The body Okta POSTs to /Users (the doc's "Create the User" request, with this user's values). */
function oktaCreateBody(u: typeof ann) {
  return {
    schemas: [USER_SCHEMA],
    userName: u.userName,
    name: { givenName: u.given, familyName: u.family },
    emails: [{ primary: true, value: u.userName, type: 'work' }],
    displayName: `${u.given} ${u.family}`,
    locale: 'en-US',
    externalId: u.oktaId,
    groups: [],
    password: '1mz050nq',
    active: true,
  };
}

/** What Okta sends when a user is assigned: the userName lookup, then the create when nothing is found. */
async function oktaAssign(u: typeof ann): Promise<string> {
  const lookup = await okta.get(`/Users${filterQuery(`userName eq "${u.userName}"`, '&startIndex=1&count=100')}`);
  expect(expectListResponse(lookup, 0)).toEqual([]);
  const created = await okta.post('/Users', oktaCreateBody(u));
  expectStatus(created, 201);
  const r = expectResource(created, 'User', integration.scimBaseUrl);
  expect(created.location).toBe(r.meta.location);
  expect(r).toMatchObject({ userName: u.userName, name: { givenName: u.given, familyName: u.family }, active: true });
  expect(r).not.toHaveProperty('password');
  return r.id;
}

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', TENANT]);
  await cli.start();
  integration = await createScimIntegration(cli, TENANT);
  okta = new ScimClient(integration.scimBaseUrl, integration.scimToken, OKTA_HEADERS);
}, 60_000);

afterAll(async () => {
  await cli.stop();
});

describe('Okta SCIM 2.0 client, replayed', () => {
  // Okta SCIM 1.1 reference (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-11): on saving the
  // connector Okta sends `GET /Users?startIndex=1&count=2` and `GET /Groups?startIndex=1&count=100`
  // ("the query parameters that Okta sends at this point are always constant"); the same test-connection
  // pair for SCIM 2.0 is listed in Delinea's "Okta SCIM Endpoint Reference"
  // (docs.delinea.com/online-help/delinea-platform/scim/okta-scim-provisioning/okta-scim-endpoint-reference.htm).
  it('answers the connector test: GET /Users?startIndex=1&count=2 and GET /Groups?startIndex=1&count=100', async () => {
    const users = await okta.get('/Users?startIndex=1&count=2');
    expect(expectListResponse(users, 0)).toEqual([]);
    expect(users.body.startIndex).toBe(1);
    const groups = await okta.get('/Groups?startIndex=1&count=100');
    expect(expectListResponse(groups, 0)).toEqual([]);
    expect(groups.body.startIndex).toBe(1);
  });

  // RFC 7644 §3.12 (401: "Authorization failure. The authorization header is invalid or missing.");
  // Okta shows an admin the error when the connector test fails.
  it('refuses the connector test with a wrong or missing token', async () => {
    const wrong = await new ScimClient(integration.scimBaseUrl, `${integration.scimToken}x`, OKTA_HEADERS).get('/Users?startIndex=1&count=2');
    expectStatus(wrong, 401);
    const missing = await fetch(`${integration.scimBaseUrl}/Users?startIndex=1&count=2`, { headers: OKTA_HEADERS });
    expect(missing.status).toBe(401);
  });

  // Okta SCIM 2.0 reference, "Determine if the User already exists" + "Create the User":
  // `GET /scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100`, then
  // `POST /scim/v2/Users` with schemas, userName, name, emails (primary, work), displayName, locale,
  // externalId, groups [], password, active; 201 with the created User.
  it('provisions an assigned user: userName lookup finds nothing, POST /Users creates it, the tenant gets the account', async () => {
    ids.ann = await oktaAssign(ann);
    const account = await waitForUser(cli, TENANT, ann.userName, 'the pushed user to reach the tenant', () => true);
    expect(account).toMatchObject({
      userName: ann.userName,
      email: ann.userName,
      givenName: 'Ann',
      familyName: 'Lee',
      displayName: 'Ann Lee',
      active: true,
      locked: false,
      groups: [],
    });
  });

  // Okta SCIM 2.0 reference, "Retrieve a specific User": `GET /scim/v2/Users/<id>` answers the User.
  // The GET answers the write at once (it is stored before the asynchronous run).
  it('GET /Users/{id} answers the created user with meta', async () => {
    const res = await okta.get(`/Users/${ids.ann}`);
    expectStatus(res, 200);
    const r = expectResource(res, 'User', integration.scimBaseUrl);
    expect(r).toMatchObject({
      id: ids.ann,
      userName: ann.userName,
      name: { givenName: 'Ann', familyName: 'Lee' },
      displayName: 'Ann Lee',
      active: true,
      emails: [{ primary: true, value: ann.userName, type: 'work' }],
      externalId: ann.oktaId,
    });
  });

  // Okta "SCIM 2.0 Spec Test" (Runscope collection https://developer.okta.com/standards/SCIM/SCIMFiles/Okta-SCIM-20-SPEC-Test.json,
  // as ported in a public Go suite): "Test Users endpoint" GET /Users?count=1&startIndex=1 (ListResponse,
  // numeric itemsPerPage/startIndex/totalResults, Resources[0] with id, name, userName, active, emails),
  // "Get Users/{{id}}", "Test invalid User by userName" / "Make sure random user doesn't exist" (totalResults 0),
  // "Test invalid User by ID" (404, Error schema, detail), "Expect failure when recreating user with same
  // values" (409), "Username Case Sensitivity Check" (uppercase userName eq: 200).
  it('passes the Okta SCIM 2.0 spec test checks', async () => {
    const first = await okta.get('/Users?count=1&startIndex=1');
    const [entity] = expectListResponse(first, 1);
    expect(first.body.startIndex).toBe(1);
    expect(entity).toMatchObject({ id: ids.ann, userName: ann.userName, active: true, name: { givenName: 'Ann', familyName: 'Lee' } });
    expect(entity.emails[0].value).toBe(ann.userName);

    const byId = await okta.get(`/Users/${entity.id}`);
    expectStatus(byId, 200);
    expect(byId.body.id).toBe(entity.id);

    const random = await okta.get(`/Users${filterQuery('userName eq "Runscope999Nobody@atko.com"')}`);
    expect(expectListResponse(random, 0)).toEqual([]);

    const invalid = await okta.get(`/Users/${randomUUID()}`);
    expectScimError(invalid, 404);

    const again = await okta.post('/Users', oktaCreateBody(ann));
    // RFC 7644 §3.3: a duplicate userName is 409 with scimType "uniqueness".
    expectScimError(again, 409, 'uniqueness');

    // RFC 7643 §4.1.1: userName is caseExact false, so `eq` matches whatever the case (RFC 7644 §3.4.2.2).
    const caps = await okta.get(`/Users${filterQuery(`userName eq "${ann.userName.toUpperCase()}"`)}`);
    const [found] = expectListResponse(caps, 1);
    expect(found.id).toBe(ids.ann);

    // Okta spec test "Optional Test: Verify Groups endpoint": GET /Groups answers 200.
    const groups = await okta.get('/Groups');
    expectListResponse(groups);
  });

  // RFC 7643 §4.1.1 (userName: caseExact false, uniqueness server) with RFC 7644 §3.3 (409 "uniqueness"):
  // a second user whose userName differs only in case is the same userName. dirsync SPEC: accounts link to
  // the person with the same normalized (case-insensitive) userName.
  it('refuses a second user whose userName differs only in case (409 uniqueness)', async () => {
    const res = await okta.post('/Users', { ...oktaCreateBody(ann), userName: ann.userName.toUpperCase(), externalId: '00uother0000000000009' });
    expectScimError(res, 409, 'uniqueness');
  });

  // Okta SCIM 2.0 reference, "Update a specific User (PUT)": `GET /Users/<id>`, then `PUT /Users/<id>` with the
  // whole User (schemas, id, userName, name with middleName, emails with display, active, groups [], meta);
  // 200 with the updated User.
  it('applies a profile update sent as GET then PUT of the whole user', async () => {
    const current = await okta.get(`/Users/${ids.ann}`);
    expectStatus(current, 200);
    const put = await okta.put(`/Users/${ids.ann}`, {
      schemas: [USER_SCHEMA],
      id: ids.ann,
      userName: ann.userName,
      name: { givenName: 'Annie', middleName: 'Excited', familyName: 'Lee-Smith' },
      emails: [{ primary: true, value: ann.userName, type: 'work', display: ann.userName }],
      displayName: 'Annie Lee-Smith',
      active: true,
      groups: [],
      meta: { resourceType: 'User' },
    });
    expectStatus(put, 200);
    const r = expectResource(put, 'User', integration.scimBaseUrl);
    expect(r).toMatchObject({ id: ids.ann, name: { givenName: 'Annie', middleName: 'Excited', familyName: 'Lee-Smith' }, displayName: 'Annie Lee-Smith', active: true });
    const account = await waitForUser(cli, TENANT, ann.userName, 'the PUT profile to reach the tenant', (u) => u.givenName === 'Annie');
    expect(account).toMatchObject({ givenName: 'Annie', familyName: 'Lee-Smith', displayName: 'Annie Lee-Smith', active: true, locked: false });
  });

  // Okta SCIM 2.0 reference, "Update a specific User (PATCH)": deactivation is
  // `PATCH /Users/<id>` {"schemas":[PatchOp],"Operations":[{"op":"replace","value":{"active":false}}]};
  // 200 with the User or 204. dirsync SPEC: deactivated -> deprovisioned (suspend: inactive) with a lock.
  it('deactivates on PATCH replace {active:false} without a path: the account is suspended and locked', async () => {
    const res = await okta.patch(`/Users/${ids.ann}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { active: false } }] });
    const r = expectPatched(res, 'User', integration.scimBaseUrl);
    if (r) expect(r.active).toBe(false);
    const got = await okta.get(`/Users/${ids.ann}`);
    expect(got.body.active).toBe(false);
    // Nothing else of the user changed.
    expect(got.body).toMatchObject({ userName: ann.userName, name: { givenName: 'Annie', familyName: 'Lee-Smith' } });
    const account = await waitForUser(cli, TENANT, ann.userName, 'the deactivation to lock the account', (u) => u.locked);
    expect(account).toMatchObject({ active: false, locked: true, givenName: 'Annie' });
  });

  // Same reference: "Activating a user" is also a PATCH (op replace, value {active:true}); the Okta CRUD test
  // (okta-developer-docs .../standards/SCIM/SCIMFiles/Okta-SCIM-CRUD-Test.json, "Verify if user is reactivated
  // in SCIM App") then expects GET /Users/<id> active true. dirsync SPEC: reprovisioning lifts the lock.
  it('reactivates on PATCH replace {active:true}: the lock is lifted', async () => {
    const res = await okta.patch(`/Users/${ids.ann}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { active: true } }] });
    const r = expectPatched(res, 'User', integration.scimBaseUrl);
    if (r) expect(r.active).toBe(true);
    expect((await okta.get(`/Users/${ids.ann}`)).body.active).toBe(true);
    const account = await waitForUser(cli, TENANT, ann.userName, 'the reactivation to lift the lock', (u) => !u.locked);
    expect(account).toMatchObject({ active: true, locked: false });
  });

  // Okta SCIM 2.0 reference, "Create Groups": `POST /scim/v2/Groups` {"schemas":[Group],"displayName":...,
  // "members":[...]} (the doc's example has an empty list; IDP-FACTS: Okta pushes a group with its members);
  // 201 with the Group as a GET would answer it.
  it('pushes a group with members: POST /Groups, the tenant group lists their userNames', async () => {
    ids.bob = await oktaAssign(bob);
    ids.cat = await oktaAssign(cat);
    const res = await okta.post('/Groups', {
      schemas: [GROUP_SCHEMA],
      displayName: 'Engineering',
      members: [
        { value: ids.ann, display: ann.userName },
        { value: ids.bob, display: bob.userName },
      ],
    });
    expectStatus(res, 201);
    const g = expectResource(res, 'Group', integration.scimBaseUrl);
    expect(res.location).toBe(g.meta.location);
    expect(g.displayName).toBe('Engineering');
    expect((g.members ?? []).map((m: { value: string }) => m.value).sort()).toEqual([ids.ann, ids.bob].sort());
    groupId = g.id;

    const got = await okta.get(`/Groups/${groupId}`);
    expectStatus(got, 200);
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.ann, ids.bob].sort());

    const groups = await waitForGroups(cli, TENANT, 'the pushed group with two members', (gs) => sortedMembers(gs.find((x) => x.name === 'Engineering')).length === 2);
    expect(groups).toEqual([{ id: expect.any(String), name: 'Engineering', members: [ann.userName, bob.userName].sort() }]);
    const a = await waitForUser(cli, TENANT, ann.userName, 'the membership on the account', (u) => u.groups.includes('Engineering'));
    expect(a.groups).toEqual(['Engineering']);
  });

  // Okta SCIM 2.0 reference, "Retrieve Users": Okta imports page by page with startIndex and count, "the
  // startIndex becomes startIndex+100"; "The SCIM server must consistently return the same ordering of results
  // ... regardless of which values are provided for the count and startIndex". RFC 7644 §3.4.2.4.
  it('pages /Users with startIndex and count in a stable order', async () => {
    const all = expectListResponse(await okta.get('/Users?startIndex=1&count=100'), 3).map((u: { id: string }) => u.id);
    expect([...all].sort()).toEqual([ids.ann, ids.bob, ids.cat].sort());
    const page1 = await okta.get('/Users?startIndex=1&count=2');
    expect(expectListResponse(page1, 3).map((u: { id: string }) => u.id)).toEqual(all.slice(0, 2));
    expect(page1.body.startIndex).toBe(1);
    const page2 = await okta.get('/Users?startIndex=3&count=2');
    expect(expectListResponse(page2, 3).map((u: { id: string }) => u.id)).toEqual(all.slice(2));
    expect(page2.body.startIndex).toBe(3);
    const beyond = await okta.get('/Users?startIndex=4&count=2');
    expect(expectListResponse(beyond, 3)).toEqual([]);
  });

  // Okta SCIM 2.0 reference, "Update a specific Group name": `PATCH /Groups/<id>`
  // {"schemas":[PatchOp],"Operations":[{"op":"replace","value":{"id":"<id>","displayName":"..."}}]}; 200 or 204.
  it('renames a group on PATCH replace {id, displayName} without a path', async () => {
    const res = await okta.patch(`/Groups/${groupId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', value: { id: groupId, displayName: 'Platform Engineering' } }] });
    const g = expectPatched(res, 'Group', integration.scimBaseUrl);
    if (g) expect(g.displayName).toBe('Platform Engineering');
    const got = await okta.get(`/Groups/${groupId}`);
    expect(got.body).toMatchObject({ id: groupId, displayName: 'Platform Engineering' });
    // The rename is not a membership change.
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.ann, ids.bob].sort());
    const groups = await waitForGroups(cli, TENANT, 'the group rename', (gs) => gs.some((x) => x.name === 'Platform Engineering'));
    expect(groups).toEqual([{ id: expect.any(String), name: 'Platform Engineering', members: [ann.userName, bob.userName].sort() }]);
  });

  // Okta SCIM 2.0 reference, "Update specific Group membership": one PATCH with
  // {"op":"remove","path":"members[value eq \"<id>\"]"} and {"op":"add","path":"members","value":[{"value","display"}]}.
  it('applies a membership PATCH: remove by members[value eq "id"] and add by members', async () => {
    const res = await okta.patch(`/Groups/${groupId}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [
        { op: 'remove', path: `members[value eq "${ids.bob}"]` },
        { op: 'add', path: 'members', value: [{ value: ids.cat, display: cat.userName }] },
      ],
    });
    expectPatched(res, 'Group', integration.scimBaseUrl);
    const got = await okta.get(`/Groups/${groupId}`);
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.ann, ids.cat].sort());
    const groups = await waitForGroups(cli, TENANT, 'bob out, cat in', (gs) => JSON.stringify(sortedMembers(gs[0])) === JSON.stringify([ann.userName, cat.userName].sort()));
    expect(groups[0]).toMatchObject({ name: 'Platform Engineering', members: [ann.userName, cat.userName].sort() });
    // Bob left the group, not the app: his account stays active.
    const b = await waitForUser(cli, TENANT, bob.userName, 'bob without the group', (u) => u.groups.length === 0);
    expect(b).toMatchObject({ active: true, locked: false, groups: [] });
  });

  // Same section: "a full push of the membership ... using the replace operation":
  // {"op":"replace","path":"members","value":[{value,display},...]} replaces all members.
  it('applies a full membership push (replace path members)', async () => {
    const res = await okta.patch(`/Groups/${groupId}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [{ op: 'replace', path: 'members', value: [{ value: ids.bob, display: bob.userName }, { value: ids.cat, display: cat.userName }] }],
    });
    expectPatched(res, 'Group', integration.scimBaseUrl);
    const got = await okta.get(`/Groups/${groupId}`);
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.bob, ids.cat].sort());
    const groups = await waitForGroups(cli, TENANT, 'members bob and cat', (gs) => JSON.stringify(sortedMembers(gs[0])) === JSON.stringify([bob.userName, cat.userName].sort()));
    expect(groups[0]!.members).toEqual([bob.userName, cat.userName].sort());
  });

  // IDP-FACTS (SCIM section): Okta reads groups with `GET /Groups?excludedAttributes=members`; RFC 7644
  // §3.4.2.5 (excludedAttributes) and §3.9: the listed attribute is left out of every returned resource.
  it('lists groups without members on GET /Groups?excludedAttributes=members', async () => {
    const res = await okta.get('/Groups?excludedAttributes=members');
    const [g] = expectListResponse(res, 1);
    expect(g).toMatchObject({ id: groupId, displayName: 'Platform Engineering', meta: { resourceType: 'Group' } });
    expect(g.schemas).toContain(GROUP_SCHEMA);
    expect(g).not.toHaveProperty('members');
    // And paging: Okta pages with startIndex and count (Okta reference, "Retrieve Groups").
    const paged = await okta.get('/Groups?startIndex=1&count=100');
    expect(paged.body).toMatchObject({ schemas: [LIST_SCHEMA], totalResults: 1, startIndex: 1 });
  });

  // Okta SCIM 2.0 reference, "Delete a specific Group": unlinking a pushed group with "Delete the group in the
  // target app" sends `DELETE /scim/v2/Groups/<id>`; 204 No Content. RFC 7644 §3.6: later GETs answer 404.
  it('deletes the group on DELETE /Groups/{id}: 204, then 404, and the tenant group is gone', async () => {
    // Okta pushes a second group first so the deletion does not leave the tenant without groups.
    const keep = await okta.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Sales', members: [{ value: ids.ann, display: ann.userName }] });
    expectStatus(keep, 201);
    await waitForGroups(cli, TENANT, 'the second group', (gs) => gs.some((x) => x.name === 'Sales'));

    const res = await okta.delete(`/Groups/${groupId}`);
    expectStatus(res, 204);
    expect(res.text).toBe('');
    expectScimError(await okta.get(`/Groups/${groupId}`), 404);
    const groups = await waitForGroups(cli, TENANT, 'the deleted group to go', (gs) => !gs.some((x) => x.name === 'Platform Engineering'));
    expect(groups).toEqual([{ id: expect.any(String), name: 'Sales', members: [ann.userName] }]);
    // Deleting a group deprovisions nobody: Okta never deletes users, and the group was not the assignment.
    for (const u of [bob, cat]) {
      const account = await waitForUser(cli, TENANT, u.userName, 'the former member', (x) => !x.groups.includes('Platform Engineering'));
      expect(account).toMatchObject({ active: true, locked: false });
    }
    expect((await tenantGroups(cli, TENANT)).map((g) => g.name)).toEqual(['Sales']);
  });
});
