import { describe, expect, it } from 'vitest';
import { toDirectoryGroup, toDirectoryUser } from '../../src/connectors/authentik/authentik.mapping.js';
import { RecordError, SnapshotError } from '../../src/core/snapshot.js';

const base = { pk: 7, username: 'ann', name: 'Ann Marie Lee', email: 'ann@x.test', isActive: true, attributes: {} };

describe('authentik mapping', () => {
  it('maps username, email and name, splitting name only as a fallback', () => {
    expect(toDirectoryUser(base)).toMatchObject({
      externalId: '7',
      userName: 'ann',
      email: 'ann@x.test',
      displayName: 'Ann Marie Lee',
      givenName: 'Ann Marie',
      familyName: 'Lee',
      active: true,
      status: 'active',
    });
    expect(toDirectoryUser({ ...base, name: 'Cher' })).toMatchObject({ givenName: 'Cher', familyName: null });
    expect(toDirectoryUser({ ...base, name: '' })).toMatchObject({ displayName: null, givenName: null, familyName: null });
  });

  it('prefers given and family names from the attributes a source filled in', () => {
    const u = toDirectoryUser({ ...base, attributes: { given_name: 'Anne-Marie', sn: 'Lee-Smith', ldap_uniq: 'x' } });
    expect(u).toMatchObject({ givenName: 'Anne-Marie', familyName: 'Lee-Smith' });
    expect(u.attributes).toEqual({ given_name: 'Anne-Marie', sn: 'Lee-Smith', ldap_uniq: 'x' });
  });

  it.each([
    [false, false],
    ['False', false],
    ['true', true],
    [undefined, true],
  ])('reads is_active %o as %s', (isActive, active) => {
    expect(toDirectoryUser({ ...base, isActive }).active).toBe(active);
  });

  it('rejects values that are not users', () => {
    expect(() => toDirectoryUser({ ...base, isActive: 'maybe' })).toThrow(SnapshotError);
    expect(() => toDirectoryUser({ ...base, username: '' })).toThrow('authentik user 7 has no username');
    expect(() => toDirectoryUser({ ...base, pk: undefined })).toThrow(/^authentik user .* has no pk$/);
    expect(() => toDirectoryUser({ ...base, username: 12345 })).toThrow('authentik user 7 has a username that is a number (12345), not a string');
    expect(() => toDirectoryGroup({ pk: 'g-1', name: null })).toThrow('authentik group g-1 has no name');
  });

  it('says what can still be read of a record it rejects: the id, and a status that deprovisions', () => {
    const error = (() => {
      try {
        toDirectoryUser({ ...base, username: '', isActive: false });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RecordError);
    expect((error as RecordError).record).toEqual({ externalId: '7', subject: '7', active: false });
  });

  it('reads numbers in name and email as their text, and blank ones as absent', () => {
    expect(toDirectoryUser({ ...base, name: 42, email: 7 })).toMatchObject({ displayName: '42', email: '7' });
    expect(toDirectoryUser({ ...base, name: '  ', email: '' })).toMatchObject({ displayName: null, email: null });
  });

  it('maps groups with their attributes, description from attributes', () => {
    expect(toDirectoryGroup({ pk: 'g-1', name: 'Eng', attributes: { description: 'Builders', lead: 'ann' } })).toMatchObject({
      externalId: 'g-1',
      name: 'Eng',
      description: 'Builders',
      attributes: { description: 'Builders', lead: 'ann' },
    });
  });
});
