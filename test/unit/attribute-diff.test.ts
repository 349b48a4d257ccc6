import { describe, expect, it } from 'vitest';
import { attributeDiff } from '../../src/core/attribute-diff.js';

describe('attributeDiff', () => {
  it('names each top-level attribute that changed, appeared or went, with its values before and after', () => {
    expect(attributeDiff({ costCenter: 'A1', title: 'Eng', nick: 'x' }, { costCenter: 'B2', title: 'Eng', manager: 'ann' })).toEqual({
      previous: { costCenter: 'A1', nick: 'x' },
      new: { costCenter: 'B2', manager: 'ann' },
    });
  });

  it('gives a nested value whole, and never counts key order', () => {
    expect(attributeDiff({ address: { city: 'Oslo', zip: '0150' } }, { address: { zip: '0150', city: 'Bergen' } })).toEqual({
      previous: { address: { city: 'Oslo', zip: '0150' } },
      new: { address: { zip: '0150', city: 'Bergen' } },
    });
    expect(attributeDiff({ a: { x: 1, y: [1, 2] }, b: null }, { a: { y: [1, 2], x: 1 }, b: null })).toBeUndefined();
  });

  it('tells an attribute that became null from one that was absent, as the fingerprint does', () => {
    expect(attributeDiff({ title: 'CTO' }, { title: 'CTO', costCenter: null })).toEqual({ previous: {}, new: { costCenter: null } });
    expect(attributeDiff({ costCenter: null }, {})).toEqual({ previous: { costCenter: null }, new: {} });
  });

  it('tells a value from its string spelling and an array from its reordering', () => {
    expect(attributeDiff({ n: 10, tags: ['a', 'b'] }, { n: '10', tags: ['b', 'a'] })).toEqual({ previous: { n: 10, tags: ['a', 'b'] }, new: { n: '10', tags: ['b', 'a'] } });
  });
});
