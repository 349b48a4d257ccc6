import { describe, expect, it } from 'vitest';
import { changeFields } from '../../src/http/console-format.js';

describe('changeFields', () => {
  it('shows named fields as they are, and each raw attribute of changes.attributes as a field of its own, JSON but for strings', () => {
    expect(
      changeFields({
        email: { previous: 'a@x.test', new: 'b@x.test' },
        title: { previous: null, new: 'CTO' },
        attributes: { previous: { costCenter: 'CC-7', nick: 'x' }, new: { costCenter: null, address: { city: 'Oslo' } } },
      }),
    ).toEqual([
      { name: 'email', previous: 'a@x.test', next: 'b@x.test' },
      { name: 'title', previous: null, next: 'CTO' },
      { name: 'attributes.costCenter', previous: 'CC-7', next: null },
      { name: 'attributes.nick', previous: 'x', next: null },
      { name: 'attributes.address', previous: null, next: '{"city":"Oslo"}' },
    ]);
  });

  it('shows nothing for no changes, and a count as its number', () => {
    expect(changeFields(undefined)).toEqual([]);
    expect(changeFields(null)).toEqual([]);
    expect(changeFields({ members: { previous: 3, new: 4 } })).toEqual([{ name: 'members', previous: '3', next: '4' }]);
  });
});
