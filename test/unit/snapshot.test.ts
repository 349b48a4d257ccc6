import { describe, expect, it } from 'vitest';
import type { DirectoryGroup, DirectoryUser } from '../../src/core/model.js';
import { MAX_RECORD_ATTRIBUTES, MAX_RECORD_BYTES, MAX_USER_NAME_LENGTH, SnapshotBuilder } from '../../src/core/snapshot.js';

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
    ['decomposed and precomposed accents (normalized to NFC)', 'Jose\u0301@x.test', 'José@x.test'],
  ])('skips both users whose userNames differ only in %s, naming the clash', (_, a, b) => {
    const built = build([user('1', a), user('2', b), user('3', 'other@x.test')]);
    expect([...built.users.keys()]).toEqual(['3']);
    expect(built.skipped.map((r) => [r.externalId, r.reason])).toEqual([
      ['1', `IdP users 1 and 2 have the same userName "${a}" (compared case-insensitively); rename one in the IdP`],
      ['2', `IdP users 1 and 2 have the same userName "${b}" (compared case-insensitively); rename one in the IdP`],
    ]);
  });

  it('keeps users apart whose userNames differ in a final small sigma and a small sigma, as Postgres does', () => {
    expect(build([user('1', 'οδυς@x.test'), user('2', 'οδυσ@x.test')]).users.size).toBe(2);
  });

  it('keeps the last copy of a record read twice', () => {
    expect(build([user('1', 'a@x.test', { displayName: 'Old' }), user('1', 'a@x.test', { displayName: 'New' })]).users.get('1')?.displayName).toBe('New');
  });

  /** The one skipped record's reason, with the rest of the read intact. */
  function skippedReason(users: DirectoryUser[], groups: DirectoryGroup[] = []): string {
    const built = build([...users, user('ok', 'ok@x.test')], groups);
    expect(built.users.has('ok')).toBe(true);
    expect(built.skipped).toHaveLength(1);
    return built.skipped[0]!.reason;
  }

  it('skips a userName too long to index, counting code points', () => {
    expect(build([user('1', '😀'.repeat(MAX_USER_NAME_LENGTH))]).users.size).toBe(1);
    expect(skippedReason([user('1', '😀'.repeat(MAX_USER_NAME_LENGTH + 1))])).toMatch(`IdP user 1 has a userName of ${MAX_USER_NAME_LENGTH + 1} characters`);
  });

  it('skips a user or group over the record size limits, keeping a readable status, and takes one at the limits', () => {
    const names = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, i]));
    expect(build([user('1', 'a@x.test', { attributes: names(MAX_RECORD_ATTRIBUTES) })]).users.size).toBe(1);
    expect(skippedReason([user('1', 'a@x.test', { attributes: names(50_000) })])).toBe(
      'IdP user 1 has 50,000 attributes (nested ones counted); at most 1,000 are taken: remove attributes in the IdP or stop sending them to this app',
    );
    // Nested names count: 1 + 1,000.
    expect(skippedReason([user('1', 'a@x.test', { attributes: { custom: names(MAX_RECORD_ATTRIBUTES) } })])).toMatch(/^IdP user 1 has 1,001 attributes/);
    // Bytes as UTF-8: 30,000 three-byte characters are 90,000 bytes in 30,000 characters.
    expect(skippedReason([user('1', 'a@x.test', { attributes: { bio: '山'.repeat(30_000) } })])).toMatch(/^IdP user 1 has 90,01\d bytes of attributes as JSON; at most 65,536 \(64 KiB\) are taken/);
    expect(build([user('1', 'a@x.test', { attributes: { bio: 'x'.repeat(MAX_RECORD_BYTES - 20) } })]).users.size).toBe(1);
    const suspended = build([user('1', 'a@x.test', { active: false, attributes: names(2_000) })]).skipped[0];
    expect(suspended).toMatchObject({ kind: 'user', externalId: '1', subject: 'a@x.test', active: false });
    expect(skippedReason([], [group('g1', 'Big', { attributes: names(1_500) })])).toMatch(/^IdP group g1 has 1,500 attributes/);
  });

  it('skips a record holding a NUL character, naming the field, in values and keys', () => {
    expect(skippedReason([user('1', 'a@x.test', { familyName: 'L\u0000' })])).toMatch('IdP user 1 has a NUL character in familyName');
    expect(skippedReason([user('1', 'a@x.test', { attributes: { emails: ['a', 'b\u0000'] } })])).toMatch('IdP user 1 has a NUL character in attributes.emails.1');
    expect(skippedReason([user('1', 'a@x.test', { attributes: { 'k\u0000': 1 } })])).toMatch('IdP user 1 has a NUL character in attributes.k\u0000');
    expect(skippedReason([], [group('g1', 'Ops', { description: '\u0000' })])).toMatch('IdP group g1 has a NUL character in description');
  });

  it('skips a record holding a lone surrogate, and accepts paired ones', () => {
    expect(skippedReason([user('1', 'a\ud800@x.test')])).toMatch('IdP user 1 has a lone surrogate (text that is not valid Unicode) in userName');
    expect(build([user('1', 'a😀@x.test', { displayName: '\ud83d\ude00' })]).users.size).toBe(1);
  });

  it('keeps what a skipped user\'s status says, and its memberships in scope', () => {
    const b = new SnapshotBuilder();
    b.addUser(user('1', 'a@x.test', { active: false, status: 'SUSPENDED', attributes: { note: 'x\u0000' } }));
    b.addGroup(group('g1', 'Ops'));
    b.addMember('g1', '1');
    b.addMember('g1', 'out-of-scope');
    const built = b.build();
    expect(built.skipped).toEqual([expect.objectContaining({ kind: 'user', externalId: '1', active: false })]);
    expect([...built.memberships.get('g1')!]).toEqual(['1']);
  });
});
