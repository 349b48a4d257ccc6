import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import {
  GROUP_SCHEMA,
  PATCH_SCHEMA,
  SPC_SCHEMA,
  ScimClient,
  type ScimIntegration,
  type ScimResponse,
  USER_SCHEMA,
  createScimIntegration,
  expectListResponse,
  expectResource,
  expectScimError,
  expectScimJson,
  expectStatus,
  sortedMembers,
  waitForGroups,
  waitForUser,
} from './support.js';

// authentik's outgoing SCIM provider, replayed request by request against `dirsync start`.
// Sources (repo goauthentik/authentik):
// - authentik/providers/scim/clients/base.py: every request carries `Authorization: Bearer <token>`,
//   `Accept: application/scim+json`, `Content-Type: application/scim+json`; the client first reads
//   `GET /ServiceProviderConfig` (patch.supported decides PATCH vs PUT for groups, filter.supported decides
//   whether a 409 on create is followed by a lookup); 404 -> NotFound, 409 -> ObjectExists, 204 -> {},
//   anything else it parses with response.json().
// - authentik/providers/scim/clients/users.py: create = POST /Users; on 409 (and filter supported)
//   GET /Users?{urlencode({'filter': f'userName eq "{userName}"'})} and adopt Resources[0].id;
//   update = PUT /Users/{id} with the whole user (id included); delete = DELETE /Users/{id}.
// - authentik/providers/scim/clients/groups.py: with PATCH supported, create = POST /Groups without members,
//   then PATCH {"op":"add","path":"members","value":[{"value":id}]} per member; update = PATCH
//   {"op":"replace","value":{whole group}} (no path), then GET /Groups/{id} and add/remove PATCHes for the
//   difference ({"op":"remove","path":"members","value":[{"value":id}]}); delete = DELETE /Groups/{id}.
// - blueprints/system/providers-scim.yaml: the default user mapping (userName, name.formatted/givenName/
//   familyName, displayName, locale, active, emails [{value, type "other", primary true}]); externalId is the
//   user's uid when the mapping sets none; the group mapping is {displayName}; externalId is the group pk.
const cli = new CliHarness();
const TENANT = 'ak-scim';
let integration: ScimIntegration;
let ak: ScimClient;
const AK_HEADERS = { accept: 'application/scim+json', 'content-type': 'application/scim+json' };

interface AkUser {
  username: string;
  name: string;
  email: string;
  uid: string;
  isActive: boolean;
}
const dana: AkUser = { username: 'dana', name: 'Dana Scully', email: 'dana.scully@ak-scim.test', uid: 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90', isActive: true };
const fox: AkUser = { username: 'fox', name: 'Fox Mulder', email: 'fox.mulder@ak-scim.test', uid: 'f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0', isActive: true };
const ids: Record<string, string> = {};
let groupId: string;
const GROUP_PK = '3f1e9a52-8c1b-4d7e-9a6f-2b5c4d3e2f1a';

/** The User authentik's default mapping produces (model_dump(mode="json", exclude_unset=True)). */
function akUserBody(u: AkUser, id?: string) {
  const [givenName, familyName] = u.name.includes(' ') ? [u.name.slice(0, u.name.indexOf(' ')), u.name.slice(u.name.indexOf(' ') + 1)] : [u.name, ''];
  return {
    schemas: [USER_SCHEMA],
    ...(id ? { id } : {}),
    userName: u.username,
    name: { formatted: u.name, givenName, familyName },
    displayName: u.name,
    locale: 'en',
    active: u.isActive,
    emails: [{ value: u.email, type: 'other', primary: true }],
    externalId: u.uid,
  };
}

/** authentik's _request: anything >= 400 is an error; 204 is {}; otherwise the body must be JSON. */
function expectAkSuccess(res: ScimResponse, statuses: number[]): void {
  expectStatus(res, statuses);
  if (res.status !== 204) {
    expect(res.body, `authentik parses the ${res.status} body as JSON: ${res.text}`).toBeDefined();
    expectScimJson(res);
  }
}

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', TENANT]);
  await cli.start();
  integration = await createScimIntegration(cli, TENANT);
  ak = new ScimClient(integration.scimBaseUrl, integration.scimToken, AK_HEADERS);
}, 60_000);

afterAll(async () => {
  await cli.stop();
});

describe('authentik SCIM provider client, replayed', () => {
  // base.py get_service_provider_config: GET /ServiceProviderConfig, validated against the RFC 7643 §5 schema
  // (patch, bulk, filter, changePassword, sort, etag, authenticationSchemes). dirsync SPEC: filters, paging,
  // PATCH, PUT, DELETE are supported, so patch.supported and filter.supported are true; bearer auth is listed.
  it('reads ServiceProviderConfig: PATCH and filter supported, bearer auth', async () => {
    const res = await ak.get('/ServiceProviderConfig');
    expectStatus(res, 200);
    expectScimJson(res);
    const c = res.body;
    expect(c.schemas).toContain(SPC_SCHEMA);
    expect(c.patch).toMatchObject({ supported: true });
    // RFC 7643 §5: filter.maxResults and bulk.maxOperations/maxPayloadSize are REQUIRED; authentik validates the
    // document and, when it does not validate, falls back to a default with patch and filter unsupported
    // (so no 409 lookup, PUT for groups), and it chunks group PATCHes by bulk.maxOperations.
    expect(c.filter).toMatchObject({ supported: true, maxResults: expect.any(Number) });
    expect(c.bulk).toMatchObject({ supported: expect.any(Boolean), maxOperations: expect.any(Number), maxPayloadSize: expect.any(Number) });
    expect(c.changePassword).toMatchObject({ supported: expect.any(Boolean) });
    expect(c.sort).toMatchObject({ supported: expect.any(Boolean) });
    expect(c.etag).toMatchObject({ supported: expect.any(Boolean) });
    expect(Array.isArray(c.authenticationSchemes)).toBe(true);
    // RFC 7643 §5: each scheme has type, name, description; "oauthbearertoken" is the bearer token type.
    expect(c.authenticationSchemes).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'oauthbearertoken', name: expect.any(String), description: expect.any(String) })]));
  });

  // RFC 7644 §4: /ResourceTypes and /Schemas; RFC 7643 §6, §7. authentik's schema module models them.
  it('serves ResourceTypes and Schemas for User and Group', async () => {
    const types = await ak.get('/ResourceTypes');
    const resources = expectListResponse(types, undefined, false);
    expect(resources.map((t: { name: string }) => t.name).sort()).toEqual(['Group', 'User']);
    expect(resources.find((t: { name: string }) => t.name === 'User')).toMatchObject({ endpoint: '/Users', schema: USER_SCHEMA });
    expect(resources.find((t: { name: string }) => t.name === 'Group')).toMatchObject({ endpoint: '/Groups', schema: GROUP_SCHEMA });
    const schemas = await ak.get('/Schemas');
    // RFC 7644 §4: GET /Schemas "SHALL return all supported schemas in ListResponse format".
    const ids = expectListResponse(schemas, undefined, false).map((s: { id: string }) => s.id);
    expect(ids).toEqual(expect.arrayContaining([USER_SCHEMA, GROUP_SCHEMA]));
  });

  // users.py create: POST /Users with the mapped user; the response must carry a non-empty "id"
  // (StopSync otherwise), which authentik stores as the connection's scim_id.
  it('creates a user from authentik\'s default mapping', async () => {
    const res = await ak.post('/Users', akUserBody(dana));
    expectStatus(res, 201);
    const r = expectResource(res, 'User', integration.scimBaseUrl);
    expect(r).toMatchObject({ userName: 'dana', externalId: dana.uid, active: true, name: { givenName: 'Dana', familyName: 'Scully' } });
    ids.dana = r.id;
    const account = await waitForUser(cli, TENANT, 'dana', 'the created user to reach the tenant', () => true);
    // The email is the one marked primary; authentik types it "other", not "work".
    expect(account).toMatchObject({ userName: 'dana', email: dana.email, givenName: 'Dana', familyName: 'Scully', displayName: 'Dana Scully', active: true, locked: false });
  });

  // users.py create, ObjectExistsSyncException branch: authentik lost its connection (provider re-created,
  // or the user pushed before) and POSTs again: 409 (base.py maps 409 to ObjectExists) -> then
  // GET /Users?filter=userName+eq+%22dana%22 (Django's urlencode: quote_plus, so spaces are '+') and adopts
  // Resources[0].id. RFC 7644 §3.3: duplicate userName -> 409 scimType uniqueness.
  it('answers a repeated create with 409, and the filter lookup authentik then sends finds the same id', async () => {
    const again = await ak.post('/Users', akUserBody(dana));
    expectScimError(again, 409, 'uniqueness');
    const lookup = await ak.get(`/Users?${new URLSearchParams({ filter: 'userName eq "dana"' }).toString()}`);
    expect(lookup.body).toBeDefined();
    const [found] = expectListResponse(lookup, 1);
    expect(found).toMatchObject({ id: ids.dana, userName: 'dana' });
    // No second account appeared.
    const account = await waitForUser(cli, TENANT, 'dana', 'dana', () => true);
    expect(account.userName).toBe('dana');
  });

  // authentik up to 2025.6 sent the 409 lookup unquoted: f'userName eq {scim_user.userName}' (fixed in 2025.10,
  // "providers/scim: fix string formatting for SCIM user filter (#16465)"). RFC 7644 §3.4.2.2 wants a quoted
  // string, so a server may refuse it with 400 invalidFilter (§3.12) or accept it; dirsync SPEC: bad input is
  // answered 400, never 5xx.
  it('answers the unquoted lookup older authentik sends with a match or 400 invalidFilter, never 5xx', async () => {
    const res = await ak.get('/Users?filter=userName+eq+dana');
    expect([200, 400], `${res.status} ${res.text}`).toContain(res.status);
    if (res.status === 400) expectScimError(res, 400, 'invalidFilter');
    else expect(expectListResponse(res, 1)[0].id).toBe(ids.dana);
  });

  // users.py update: PUT /Users/{scim_id} with the whole mapped user and "id"; authentik stores the JSON response.
  it('applies an update sent as PUT of the whole user', async () => {
    const renamed = { ...dana, name: 'Dana Katherine Scully', email: 'dscully@ak-scim.test' };
    const res = await ak.put(`/Users/${ids.dana}`, akUserBody(renamed, ids.dana));
    expectAkSuccess(res, [200]);
    const r = expectResource(res, 'User', integration.scimBaseUrl);
    expect(r).toMatchObject({ id: ids.dana, name: { givenName: 'Dana', familyName: 'Katherine Scully' }, displayName: 'Dana Katherine Scully' });
    const account = await waitForUser(cli, TENANT, 'dana', 'the PUT to reach the tenant', (u) => u.email === 'dscully@ak-scim.test');
    expect(account).toMatchObject({ givenName: 'Dana', familyName: 'Katherine Scully', displayName: 'Dana Katherine Scully', active: true, locked: false });
  });

  // A user deactivated in authentik is written with the same PUT and "active": false (the mapping sends
  // request.user.is_active). dirsync SPEC: deactivated -> deprovisioned with a lock; active again lifts it.
  it('deprovisions on PUT active:false and restores on PUT active:true', async () => {
    const off = await ak.put(`/Users/${ids.dana}`, akUserBody({ ...dana, isActive: false }, ids.dana));
    expectAkSuccess(off, [200]);
    expect(off.body.active).toBe(false);
    expect(await waitForUser(cli, TENANT, 'dana', 'the lock', (u) => u.locked)).toMatchObject({ active: false, locked: true });
    const on = await ak.put(`/Users/${ids.dana}`, akUserBody(dana, ids.dana));
    expectAkSuccess(on, [200]);
    expect(await waitForUser(cli, TENANT, 'dana', 'the lock to lift', (u) => !u.locked)).toMatchObject({ active: true, locked: false, email: dana.email });
  });

  // groups.py create with PATCH supported: POST /Groups {schemas, displayName, externalId} (members deleted
  // from the payload), then _patch_add_users -> _patch_chunked: PATCH /Groups/{id}
  // {"schemas":[PatchOp],"Operations":[{"op":"add","path":"members","value":[{"value":"<scim id>"}]}, ...]}.
  it('creates a group, then adds members with PATCH add path members', async () => {
    const foxRes = await ak.post('/Users', akUserBody(fox));
    expectStatus(foxRes, 201);
    ids.fox = foxRes.body.id;

    const res = await ak.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'X-Files', externalId: GROUP_PK });
    expectStatus(res, 201);
    const g = expectResource(res, 'Group', integration.scimBaseUrl);
    expect(g).toMatchObject({ displayName: 'X-Files', externalId: GROUP_PK });
    groupId = g.id;

    const add = await ak.patch(`/Groups/${groupId}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [
        { op: 'add', path: 'members', value: [{ value: ids.dana }] },
        { op: 'add', path: 'members', value: [{ value: ids.fox }] },
      ],
    });
    expectAkSuccess(add, [200, 204]);
    const groups = await waitForGroups(cli, TENANT, 'X-Files with two members', (gs) => sortedMembers(gs.find((x) => x.name === 'X-Files')).length === 2);
    expect(groups).toEqual([{ id: expect.any(String), name: 'X-Files', members: ['dana', 'fox'] }]);
  });

  // groups.py _update_patch: PATCH {"schemas":[PatchOp],"Operations":[{"op":"replace","value":{schemas,
  // displayName, externalId, id}}]} (path None is dropped by exclude_none), then patch_compare_users:
  // GET /Groups/{id} (members read as [{value}]) and PATCH {"op":"remove","path":"members","value":[{"value":id}]}.
  it('renames with PATCH replace of the whole group, then removes a member with remove path members + value', async () => {
    const rename = await ak.patch(`/Groups/${groupId}`, {
      schemas: [PATCH_SCHEMA],
      Operations: [{ op: 'replace', value: { schemas: [GROUP_SCHEMA], displayName: 'X-Files Unit', externalId: GROUP_PK, id: groupId } }],
    });
    expectAkSuccess(rename, [200, 204]);
    const current = await ak.get(`/Groups/${groupId}`);
    expectStatus(current, 200);
    expect(current.body.displayName).toBe('X-Files Unit');
    expect(current.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.dana, ids.fox].sort());

    const remove = await ak.patch(`/Groups/${groupId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'remove', path: 'members', value: [{ value: ids.fox }] }] });
    expectAkSuccess(remove, [200, 204]);
    const after = await ak.get(`/Groups/${groupId}`);
    expect(after.body.members.map((m: { value: string }) => m.value)).toEqual([ids.dana]);
    const groups = await waitForGroups(cli, TENANT, 'the rename and the removal', (gs) => gs.length === 1 && gs[0]!.name === 'X-Files Unit' && gs[0]!.members.length === 1);
    expect(groups).toEqual([{ id: expect.any(String), name: 'X-Files Unit', members: ['dana'] }]);
  });

  // users.py delete: DELETE /Users/{scim_id} (a user deleted in authentik, or leaving the provider's scope);
  // RFC 7644 §3.6: 204, then 404 on GET. dirsync contract: DELETE deprovisions per the mode (suspend) with a lock.
  it('deprovisions and locks on DELETE /Users/{id}', async () => {
    const res = await ak.delete(`/Users/${ids.fox}`);
    expectStatus(res, 204);
    expectScimError(await ak.get(`/Users/${ids.fox}`), 404);
    const account = await waitForUser(cli, TENANT, 'fox', 'the deleted user to be locked', (u) => u.locked);
    expect(account).toMatchObject({ active: false, locked: true });
  });

  // groups.py delete: DELETE /Groups/{scim_id}; 204 (base.py turns 204 into {}), then 404.
  it('deletes a group on DELETE /Groups/{id}', async () => {
    const keep = await ak.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Lone Gunmen', externalId: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a' });
    expectStatus(keep, 201);
    await waitForGroups(cli, TENANT, 'the second group', (gs) => gs.some((g) => g.name === 'Lone Gunmen'));
    const res = await ak.delete(`/Groups/${groupId}`);
    expectStatus(res, 204);
    expectScimError(await ak.get(`/Groups/${groupId}`), 404);
    const groups = await waitForGroups(cli, TENANT, 'X-Files Unit to go', (gs) => !gs.some((g) => g.name === 'X-Files Unit'));
    expect(groups).toEqual([{ id: expect.any(String), name: 'Lone Gunmen', members: [] }]);
    expect(await waitForUser(cli, TENANT, 'dana', 'dana without the group', (u) => u.groups.length === 0)).toMatchObject({ active: true, locked: false });
  });
});
