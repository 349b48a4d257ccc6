import { describe, expect, it } from 'vitest';
import { ScimError } from '../../src/scim/scim.errors.js';
import { applyPatch, readPatchBody, splitGroupPatch } from '../../src/scim/scim.patch.js';
import { project, readGroupBody, readProjection, readUserBody } from '../../src/scim/scim.resource.js';
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA } from '../../src/scim/scim.schemas.js';

const refused = (body: () => unknown, scimType: string, detail?: RegExp) => {
  try {
    body();
  } catch (error) {
    expect(error).toBeInstanceOf(ScimError);
    expect((error as ScimError).scimType).toBe(scimType);
    if (detail) expect((error as ScimError).detail).toMatch(detail);
    return;
  }
  throw new Error('expected a ScimError');
};

const okta = {
  schemas: [USER_SCHEMA],
  userName: 'ann@example.com',
  name: { givenName: 'Ann', familyName: 'Lee' },
  emails: [{ primary: true, value: 'ann@example.com', type: 'work' }],
  displayName: 'Ann Lee',
  locale: 'en-US',
  externalId: '00u1abc',
  groups: [],
  password: 'hunter2',
  active: true,
};

describe('readUserBody', () => {
  it("keeps every attribute Okta's create sends but the password, and ignores id, meta and the readOnly groups", () => {
    const { resource, userName, externalId, active } = readUserBody({ ...okta, id: 'client-chosen', meta: { resourceType: 'User' } });
    expect({ userName, externalId, active }).toEqual({ userName: 'ann@example.com', externalId: '00u1abc', active: true });
    expect(resource).not.toHaveProperty('password');
    expect(resource).not.toHaveProperty('id');
    expect(resource).not.toHaveProperty('meta');
    expect(resource).not.toHaveProperty('groups');
    expect(resource).toMatchObject({ name: okta.name, emails: okta.emails, locale: 'en-US' });
  });

  it('keeps the enterprise extension and attributes of schemas it does not know', () => {
    const custom = 'urn:example:params:scim:schemas:extension:acme:2.0:User';
    const body = { ...okta, schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, custom], [ENTERPRISE_USER_SCHEMA]: { department: 'Eng', manager: { value: 'm1' } }, [custom]: { badge: 7 }, nickname2: 'x' };
    const { resource } = readUserBody(body);
    expect(resource[ENTERPRISE_USER_SCHEMA]).toEqual({ department: 'Eng', manager: { value: 'm1' } });
    expect(resource[custom]).toEqual({ badge: 7 });
    expect(resource.nickname2).toBe('x');
  });

  it('reads the string booleans Entra sends, wherever the schema says boolean', () => {
    const { active, resource } = readUserBody({ ...okta, active: 'False', emails: [{ value: 'a@x', primary: 'True' }] });
    expect(active).toBe(false);
    expect(resource.active).toBe(false);
    expect(resource.emails).toEqual([{ value: 'a@x', primary: true }]);
  });

  it("reads Entra's bare manager id as the manager's value", () => {
    const { resource } = readUserBody({ ...okta, [ENTERPRISE_USER_SCHEMA]: { manager: '26118915-6090-4610-87e4-49d8ca9f808d' } });
    expect(resource[ENTERPRISE_USER_SCHEMA]).toEqual({ manager: { value: '26118915-6090-4610-87e4-49d8ca9f808d' } });
  });

  it('takes a missing active as active', () => {
    const { active } = readUserBody({ schemas: [USER_SCHEMA], userName: 'bob' });
    expect(active).toBe(true);
  });

  it.each([
    [{ userName: 'x' }, 'invalidSyntax', /schemas/],
    [{ schemas: [GROUP_SCHEMA], userName: 'x' }, 'invalidSyntax', /must include urn:ietf:params:scim:schemas:core:2.0:User/],
    [{ schemas: [USER_SCHEMA] }, 'invalidValue', /userName is required/],
    [{ schemas: [USER_SCHEMA], userName: 5 }, 'invalidValue', /userName/],
    [{ schemas: [USER_SCHEMA], userName: '  ' }, 'invalidValue', /userName/],
    [{ schemas: [USER_SCHEMA], userName: 'x', active: 'maybe' }, 'invalidValue', /active must be true or false/],
    [{ schemas: [USER_SCHEMA], userName: 'x', emails: 'a@x' }, 'invalidValue', /emails must be an array/],
    [{ schemas: [USER_SCHEMA], userName: 'x', name: 'Ann' }, 'invalidValue', /name must be an object/],
    [{ schemas: [USER_SCHEMA], userName: 'a\u0000b' }, 'invalidValue', /NUL/],
    [{ schemas: [USER_SCHEMA], userName: 'x', title: 'a\ud800' }, 'invalidValue', /title/],
    [{ schemas: [USER_SCHEMA], userName: 'x', externalId: 12 }, 'invalidValue', /externalId/],
    [[1, 2], 'invalidSyntax', /JSON object/],
  ])('refuses %j with %s', (body, scimType, detail) => refused(() => readUserBody(body), scimType, detail));
});

describe('readGroupBody', () => {
  it('takes displayName and members apart from the rest', () => {
    const { group, members } = readGroupBody({ schemas: [GROUP_SCHEMA], displayName: 'Eng', externalId: 'g1', members: [{ value: 'u1', display: 'ann' }] });
    expect(group).toEqual({ displayName: 'Eng', externalId: 'g1', resource: { schemas: [GROUP_SCHEMA], displayName: 'Eng', externalId: 'g1' } });
    expect(members).toEqual([{ value: 'u1' }]);
  });

  it.each([
    [{ schemas: [GROUP_SCHEMA] }, 'invalidValue'],
    [{ schemas: [GROUP_SCHEMA], displayName: 'Eng', members: [{ display: 'no id' }] }, 'invalidValue'],
    [{ schemas: [USER_SCHEMA], displayName: 'Eng' }, 'invalidSyntax'],
  ])('refuses %j with %s', (body, scimType) => refused(() => readGroupBody(body), scimType));
});

describe('PATCH', () => {
  const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP_SCHEMA], Operations });

  it('reads op names in any case', () => {
    expect(readPatchBody(patch({ op: 'Replace', value: { active: 'False' } }, { op: 'ADD', path: 'title', value: 'x' }))).toEqual([
      { op: 'replace', value: { active: 'False' } },
      { op: 'add', path: 'title', value: 'x' },
    ]);
  });

  it.each([
    [{ Operations: [{ op: 'add', value: {} }] }, 'invalidSyntax'],
    [patch(), 'invalidSyntax'],
    [patch({ op: 'move', path: 'x' }), 'invalidSyntax'],
    [patch({ op: 'remove' }), 'noTarget'],
    [patch({ op: 'replace', path: 'title' }), 'invalidValue'],
  ])('refuses %j with %s', (body, scimType) => refused(() => readPatchBody(body), scimType));

  it('deactivates as Entra does (no path, string boolean): the patched body reads as inactive', () => {
    const patched = applyPatch({ ...okta }, readPatchBody(patch({ op: 'Replace', value: { active: 'False' } })));
    expect(readUserBody(patched).active).toBe(false);
  });

  it('replaces a value-filtered attribute and adds a dotted no-path value', () => {
    const ops = readPatchBody(
      patch(
        { op: 'replace', path: 'emails[type eq "work"].value', value: 'ann.lee@example.com' },
        { op: 'replace', value: { 'name.familyName': 'Lee-Smith', [`${ENTERPRISE_USER_SCHEMA}:department`]: 'Ops' } },
      ),
    );
    const { resource } = readUserBody(applyPatch({ ...okta, schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA] }, ops));
    expect(resource.emails).toEqual([{ primary: true, value: 'ann.lee@example.com', type: 'work' }]);
    expect(resource.name).toEqual({ givenName: 'Ann', familyName: 'Lee-Smith' });
    expect(resource[ENTERPRISE_USER_SCHEMA]).toEqual({ department: 'Ops' });
  });

  it('patches the enterprise extension as a whole object, by path or no-path value, merging what is not given, and removes it', () => {
    const start = { ...okta, schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA], [ENTERPRISE_USER_SCHEMA]: { department: 'R&D', employeeNumber: '7' } };
    const replaced = applyPatch(start, readPatchBody(patch({ op: 'replace', value: { [ENTERPRISE_USER_SCHEMA]: { costCenter: 'CC1' } } })));
    expect(replaced[ENTERPRISE_USER_SCHEMA]).toEqual({ department: 'R&D', employeeNumber: '7', costCenter: 'CC1' });
    const added = applyPatch(replaced, readPatchBody(patch({ op: 'add', path: ENTERPRISE_USER_SCHEMA.toLowerCase(), value: { department: 'Sales' } })));
    expect(added[ENTERPRISE_USER_SCHEMA]).toEqual({ department: 'Sales', employeeNumber: '7', costCenter: 'CC1' });
    expect(Object.keys(added).filter((k) => k.startsWith('urn:'))).toEqual([ENTERPRISE_USER_SCHEMA]);
    expect(readUserBody(added).resource[ENTERPRISE_USER_SCHEMA]).toEqual({ department: 'Sales', employeeNumber: '7', costCenter: 'CC1' });
    const removed = applyPatch(added, readPatchBody(patch({ op: 'remove', path: ENTERPRISE_USER_SCHEMA })));
    expect(removed).not.toHaveProperty(ENTERPRISE_USER_SCHEMA);
    expect(Object.keys(removed).filter((k) => k.startsWith('urn:'))).toEqual([]);
    refused(() => applyPatch(start, readPatchBody(patch({ op: 'replace', path: ENTERPRISE_USER_SCHEMA, value: 'x' }))), 'invalidValue');
  });

  it('sets the sub-attributes a no-path value gives a complex attribute, leaving the others (RFC 7644 §3.5.2.1, §3.5.2.3)', () => {
    const start = { ...okta, name: { givenName: 'Ann', familyName: 'Lee', formatted: 'Ann Lee' } };
    const replaced = applyPatch(start, readPatchBody(patch({ op: 'replace', value: { name: { givenName: 'Anne', formatted: 'Anne Lee' }, active: false } })));
    expect(replaced.name).toEqual({ givenName: 'Anne', familyName: 'Lee', formatted: 'Anne Lee' });
    expect(replaced.active).toBe(false);
    const added = applyPatch(start, readPatchBody(patch({ op: 'Add', value: { name: { middleName: 'Q' } } })));
    expect(added.name).toEqual({ givenName: 'Ann', familyName: 'Lee', formatted: 'Ann Lee', middleName: 'Q' });
    // Where there was none, the attribute is made of what is given.
    const { name: _none, ...nameless } = start;
    expect(applyPatch(nameless, readPatchBody(patch({ op: 'replace', value: { name: { familyName: 'Lee' } } }))).name).toEqual({ familyName: 'Lee' });
    // A multi-valued attribute is still replaced whole.
    const emails = [{ value: 'ann@home.example', type: 'home' }];
    expect(applyPatch(start, readPatchBody(patch({ op: 'replace', value: { emails } }))).emails).toEqual(emails);
  });

  it('gives the primary mark to the last value an operation marks, across the operations of one PATCH (RFC 7644 §3.5.2)', () => {
    const ops = readPatchBody(
      patch(
        { op: 'Add', path: 'emails', value: [{ value: 'b@example.com', type: 'work', primary: true }] },
        { op: 'Add', path: 'emails', value: [{ value: 'c@example.com', type: 'home', primary: true }] },
      ),
    );
    const patched = applyPatch({ ...okta }, ops);
    const primaries = (patched.emails as Array<{ value: string; primary?: boolean }>).filter((e) => e.primary === true).map((e) => e.value);
    expect(primaries).toEqual(['c@example.com']);
  });

  it('splits member operations from the rest, in order', () => {
    const steps = splitGroupPatch(
      readPatchBody(
        patch(
          { op: 'replace', value: { displayName: 'Eng 2', members: [{ value: 'A' }] } },
          { op: 'add', path: 'members', value: [{ value: 'b' }] },
          { op: 'remove', path: 'members[value eq "C"]' },
          { op: 'Remove', path: 'members', value: [{ value: 'd' }] },
          { op: 'remove', path: 'members' },
          { op: 'replace', path: 'displayName', value: 'Eng 3' },
        ),
      ),
    );
    expect(steps).toEqual([
      { members: { kind: 'replace', members: [{ value: 'A' }] } },
      { other: { op: 'replace', value: { displayName: 'Eng 2' } } },
      { members: { kind: 'add', members: [{ value: 'b' }] } },
      { members: { kind: 'remove', ids: ['c'] } },
      { members: { kind: 'remove', ids: ['d'] } },
      { members: { kind: 'remove', ids: 'all' } },
      { other: { op: 'replace', path: 'displayName', value: 'Eng 3' } },
    ]);
  });

  it('refuses a members value filter other than value eq', () => {
    refused(() => splitGroupPatch(readPatchBody(patch({ op: 'remove', path: 'members[display eq "ann"]' }))), 'invalidFilter');
    refused(() => splitGroupPatch(readPatchBody(patch({ op: 'replace', path: 'members[value eq "a"]', value: {} }))), 'invalidPath');
  });
});

describe('projection', () => {
  const user = { schemas: [USER_SCHEMA], id: '1', userName: 'ann', name: { givenName: 'Ann', familyName: 'Lee' }, emails: [{ value: 'a', type: 'work' }], [ENTERPRISE_USER_SCHEMA]: { department: 'Eng', costCenter: '7' }, meta: { resourceType: 'User' } };

  it('returns what attributes names, with id and schemas always', () => {
    expect(project(user, readProjection({ attributes: 'userName,name.familyName,emails.value' }), USER_SCHEMA)).toEqual({
      schemas: [USER_SCHEMA],
      id: '1',
      userName: 'ann',
      name: { familyName: 'Lee' },
      emails: [{ value: 'a' }],
    });
    expect(project(user, readProjection({ attributes: `${ENTERPRISE_USER_SCHEMA}:department,urn:ietf:params:scim:schemas:core:2.0:User:userName` }), USER_SCHEMA)).toEqual({
      schemas: [USER_SCHEMA],
      id: '1',
      userName: 'ann',
      [ENTERPRISE_USER_SCHEMA]: { department: 'Eng' },
    });
  });

  it('drops what excludedAttributes names, but never id or schemas', () => {
    expect(project(user, readProjection({ excludedAttributes: 'emails,name.givenName,id,schemas,meta' }), USER_SCHEMA)).toEqual({
      schemas: [USER_SCHEMA],
      id: '1',
      userName: 'ann',
      name: { familyName: 'Lee' },
      [ENTERPRISE_USER_SCHEMA]: { department: 'Eng', costCenter: '7' },
    });
  });
});
