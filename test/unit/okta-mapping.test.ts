import { describe, expect, it } from 'vitest';
import { toDirectoryGroup, toDirectoryUser } from '../../src/connectors/okta/okta.mapping.js';

const base = { id: '00u1', profile: { login: 'a@x.test', email: 'a@x.test', firstName: 'A', lastName: 'B' } };

describe('Okta mapping', () => {
  it.each([
    ['STAGED', true],
    ['PROVISIONED', true],
    ['ACTIVE', true],
    ['RECOVERY', true],
    ['PASSWORD_EXPIRED', true],
    ['LOCKED_OUT', true],
    ['SUSPENDED', false],
    ['DEPROVISIONED', false],
  ])('status %s means active=%s', (status, active) => {
    expect(toDirectoryUser({ ...base, status })).toMatchObject({ status, active });
  });

  it('keeps the fingerprint stable across key order and ignores nothing in the profile', () => {
    const a = toDirectoryUser({ ...base, status: 'ACTIVE', profile: { ...base.profile, x: 1, y: 2 } });
    const b = toDirectoryUser({ ...base, status: 'SUSPENDED', profile: { y: 2, x: 1, ...base.profile } });
    expect(a.fingerprint).toBe(b.fingerprint);
    const c = toDirectoryUser({ ...base, status: 'ACTIVE', profile: { ...base.profile, x: 1, y: 3 } });
    expect(c.fingerprint).not.toBe(a.fingerprint);
  });

  it('prefers the profile displayName and falls back to first and last name', () => {
    expect(toDirectoryUser({ ...base, profile: { ...base.profile, displayName: 'Ace' } }).displayName).toBe('Ace');
    expect(toDirectoryUser(base).displayName).toBe('A B');
    expect(toDirectoryUser({ id: '00u2', profile: { login: 'z@x.test' } })).toMatchObject({ displayName: null, email: null, givenName: null });
  });

  it('rejects a login or group name that is missing or not text, naming the record and what came instead', () => {
    expect(() => toDirectoryUser({ id: '00u3', profile: { login: null } })).toThrow('Okta user 00u3 has no profile.login');
    expect(() => toDirectoryUser({ id: '00u3', profile: { login: 12345 } })).toThrow('Okta user 00u3 has a profile.login that is a number (12345), not a string');
    expect(() => toDirectoryUser({ id: '00u3', profile: { login: ['a'] } })).toThrow('Okta user 00u3 has a profile.login that is an array, not a string');
    expect(() => toDirectoryUser({ profile: { login: 'a@x.test' } })).toThrow('Okta user a@x.test has no id');
    expect(() => toDirectoryUser({ ...base, status: 7 })).toThrow('Okta user 00u1 has a status that is a number (7), not a string');
    expect(() => toDirectoryGroup({ id: '00g3', profile: { name: false } })).toThrow('Okta group 00g3 has a profile.name that is a boolean (false), not a string');
  });

  it('reads numbers and booleans in text fields as their text', () => {
    expect(toDirectoryUser({ ...base, profile: { ...base.profile, firstName: 42, lastName: true, email: { x: 1 } } })).toMatchObject({
      givenName: '42',
      familyName: 'true',
      email: null,
    });
  });

  it('keeps the group type with its attributes', () => {
    expect(toDirectoryGroup({ id: '00g1', type: 'APP_GROUP', profile: { name: 'Sales', description: null } })).toMatchObject({
      name: 'Sales',
      description: null,
      attributes: { name: 'Sales', description: null, type: 'APP_GROUP' },
    });
  });
});
