import { describe, expect, it } from 'vitest';
import { type Binding, appScope, effectiveMembers } from '../../src/connectors/authentik/authentik.scope.js';

const b = (over: Partial<Binding>): Binding => ({ enabled: true, negate: false, user: null, group: null, policy: null, ...over });

// u1 in eng; u2 in backend (a child of eng); u3 in sales; u4 in nothing.
const userGroups = new Map([
  ['u1', ['eng']],
  ['u2', ['backend']],
  ['u3', ['sales']],
  ['u4', []],
]);
const groupParents = new Map([
  ['eng', []],
  ['backend', ['eng']],
  ['sales', []],
]);
const scope = (mode: 'any' | 'all', bindings: Binding[]) => appScope({ mode, bindings, userGroups, groupParents });

describe('authentik application scope', () => {
  it('a bound group brings its members, and the members of groups below it', () => {
    const s = scope('any', [b({ group: 'eng' })]);
    expect(s.users).toEqual(new Set(['u1', 'u2']));
    expect(s.groups).toEqual(new Set(['eng']));
  });

  it('a user binding brings that user', () => {
    expect(scope('any', [b({ group: 'sales' }), b({ user: 'u4' })]).users).toEqual(new Set(['u3', 'u4']));
  });

  it('disabled bindings grant nothing', () => {
    expect(scope('any', [b({ group: 'eng' }), b({ group: 'sales', enabled: false })]).users).toEqual(new Set(['u1', 'u2']));
  });

  it('all-mode needs every binding to pass', () => {
    expect(scope('all', [b({ group: 'eng' }), b({ user: 'u2' })]).users).toEqual(new Set(['u2']));
  });

  it('a negated binding passes for those it does not match', () => {
    const s = scope('all', [b({ group: 'eng' }), b({ group: 'backend', negate: true })]);
    expect(s.users).toEqual(new Set(['u1']));
    expect(s.groups).toEqual(new Set(['eng']));
  });

  it('ignores policy bindings, and counts them', () => {
    const s = scope('any', [b({ group: 'sales' }), b({ policy: 'p1' })]);
    expect(s.users).toEqual(new Set(['u3']));
    expect(s.ignoredPolicyBindings).toBe(1);
  });

  it('an application without user or group bindings is open to everyone', () => {
    expect(scope('any', [b({ policy: 'p1' }), b({ group: 'eng', enabled: false })])).toEqual({ users: 'all', groups: 'all', ignoredPolicyBindings: 1 });
  });

  it('survives a cycle in group parents', () => {
    const cyclic = new Map([
      ['a', ['b']],
      ['b', ['a']],
    ]);
    expect(effectiveMembers(new Map([['u1', ['a']]]), cyclic)).toEqual(
      new Map([
        ['a', new Set(['u1'])],
        ['b', new Set(['u1'])],
      ]),
    );
  });
});
