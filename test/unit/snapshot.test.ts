import { describe, expect, it } from 'vitest';
import type { DirectoryGroup, DirectoryUser } from '../../src/core/model.js';
import { MAX_USER_NAME_LENGTH, SnapshotBuilder } from '../../src/core/snapshot.js';

function user(externalId: string, userName: string, extra: Partial<DirectoryUser> = {}): DirectoryUser {
  return { externalId, userName, email: null, givenName: null, familyName: null, displayName: null, active: true, status: 'ACTIVE', attributes: {}, fingerprint: externalId, ...extra };
}

function group(externalId: string, name: string, extra: Partial<DirectoryGroup> = {}): DirectoryGroup {
  return { externalId, name, description: null, attributes: {}, fingerprint: externalId, ...extra };
}

function build(users: DirectoryUser[], groups: DirectoryGroup[] = []) {
  const b = new SnapshotBuilder();
  for (const u of users) b.addUser(u);
  for (const g of groups) b.addGroup(g);
  return b.build();
}

describe('SnapshotBuilder', () => {
  it.each([
    ['ASCII case', 'Ann@x.test', 'ann@X.TEST'],
    ['dotted capital I, which Postgres lowers to a plain i', 'İvy@x.test', 'ivy@x.test'],
    ['final capital sigma, which Postgres lowers to σ', 'ΟΔΥΣ@x.test', 'οδυσ@x.test'],
    ['non-ASCII case', 'ÅSA@x.test', 'åsa@x.test'],
  ])('rejects two users whose userNames differ only in %s', (_, a, b) => {
    expect(() => build([user('1', a), user('2', b)])).toThrow(`IdP users 1 and 2 have the same userName "${b}"`);
  });

  it.each([
    ['a final small sigma and a small sigma', 'οδυς@x.test', 'οδυσ@x.test'],
    ['decomposed and precomposed accents', 'Jose\u0301@x.test', 'José@x.test'],
  ])('keeps users apart whose userNames differ in %s, as Postgres does', (_, a, b) => {
    expect(build([user('1', a), user('2', b)]).users.size).toBe(2);
  });

  it('keeps the last copy of a record read twice', () => {
    expect(build([user('1', 'a@x.test', { displayName: 'Old' }), user('1', 'a@x.test', { displayName: 'New' })]).users.get('1')?.displayName).toBe('New');
  });

  it('rejects a userName too long to index, counting code points', () => {
    expect(build([user('1', '😀'.repeat(MAX_USER_NAME_LENGTH))]).users.size).toBe(1);
    expect(() => build([user('1', '😀'.repeat(MAX_USER_NAME_LENGTH + 1))])).toThrow(`IdP user 1 has a userName of ${MAX_USER_NAME_LENGTH + 1} characters`);
  });

  it('names the field holding a NUL character, in values and keys', () => {
    expect(() => build([user('1', 'a@x.test', { familyName: 'L\u0000' })])).toThrow('IdP user 1 has a NUL character in familyName');
    expect(() => build([user('1', 'a@x.test', { attributes: { emails: ['a', 'b\u0000'] } })])).toThrow('IdP user 1 has a NUL character in attributes.emails.1');
    expect(() => build([user('1', 'a@x.test', { attributes: { 'k\u0000': 1 } })])).toThrow('IdP user 1 has a NUL character in attributes.k\u0000');
    expect(() => build([], [group('g1', 'Ops', { description: '\u0000' })])).toThrow('IdP group g1 has a NUL character in description');
  });

  it('names the field holding a lone surrogate, and accepts paired ones', () => {
    expect(() => build([user('1', 'a\ud800@x.test')])).toThrow('IdP user 1 has a lone surrogate (text that is not valid Unicode) in userName');
    expect(build([user('1', 'a😀@x.test', { displayName: '\ud83d\ude00' })]).users.size).toBe(1);
  });
});
