import { describe, expect, it } from 'vitest';
import { attributeDiff } from '../../src/core/attribute-diff.js';

describe('attributeDiff', () => {
  it('names each top-level attribute that changed, appeared or went, with its values before and after', () => {
    expect(attributeDiff({ costCenter: 'A1', title: 'Eng', nick: 'x' }, { costCenter: 'B2', title: 'Eng', manager: 'ann' })).toEqual({
      previous: { costCenter: 'A1', nick: 'x', manager: null },
      new: { costCenter: 'B2', nick: null, manager: 'ann' },
    });
  });

  it('gives a nested value whole, and never counts key order or an explicit null against an absent key', () => {
    expect(attributeDiff({ address: { city: 'Oslo', zip: '0150' } }, { address: { zip: '0150', city: 'Bergen' } })).toEqual({
      previous: { address: { city: 'Oslo', zip: '0150' } },
      new: { address: { zip: '0150', city: 'Bergen' } },
    });
    expect(attributeDiff({ a: { x: 1, y: [1, 2] }, b: null }, { a: { y: [1, 2], x: 1 } })).toBeUndefined();
  });

  it('tells a value from its string spelling and an array from its reordering', () => {
    expect(attributeDiff({ n: 10, tags: ['a', 'b'] }, { n: '10', tags: ['b', 'a'] })).toEqual({ previous: { n: 10, tags: ['a', 'b'] }, new: { n: '10', tags: ['b', 'a'] } });
  });
});
