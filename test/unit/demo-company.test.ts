import { describe, expect, it } from 'vitest';
import { type CompanyChange, DemoCompany, type DemoDirectory } from '../../src/demo/company.js';

/** A directory that records what the company does to it. */
function recorder() {
  const users = new Map<string, { login: string; status: string; profile: Record<string, unknown> }>();
  const groups = new Map<string, string>();
  const members = new Map<string, Set<string>>();
  const assignedUsers = new Set<string>();
  const assignedGroups = new Set<string>();
  const dir: DemoDirectory = {
    addUser: (login, o) => void users.set(o.id, { login, status: o.status ?? 'ACTIVE', profile: o.profile }),
    updateUser: (id, c) => {
      const u = users.get(id)!;
      if (c.status) u.status = c.status;
      if (c.profile) {
        u.profile = { ...u.profile, ...c.profile };
        if (typeof c.profile.login === 'string') u.login = c.profile.login;
      }
    },
    addGroup: (name, o) => void (groups.set(o.id, name), members.set(o.id, new Set())),
    addMember: (g, u) => void members.get(g)!.add(u),
    removeMember: (g, u) => void members.get(g)!.delete(u),
    assignUser: (u) => void assignedUsers.add(u),
    unassignUser: (u) => void assignedUsers.delete(u),
    assignGroup: (g) => void assignedGroups.add(g),
    unassignGroup: (g) => void assignedGroups.delete(g),
  };
  /** Who the app reaches: assigned directly or through an assigned group. */
  const inScope = () => new Set([...assignedUsers, ...[...assignedGroups].flatMap((g) => [...members.get(g)!])]);
  return { dir, users, groups, members, assignedGroups, inScope };
}

describe('the demo company', () => {
  it('is about 500 people in 20 groups, most reached by the app through their groups, a few suspended', () => {
    const r = recorder();
    const company = new DemoCompany(r.dir);
    expect(r.users.size).toBe(500);
    expect(r.groups.size).toBe(20);
    expect(company.census().SUSPENDED).toBeGreaterThan(0);
    expect(company.census().SUSPENDED).toBeLessThan(25);
    const logins = [...r.users.values()].map((u) => u.login);
    expect(new Set(logins).size).toBe(logins.length);
    expect(logins.every((l) => /^[a-z]+\.[a-z]+\d*@demo\.dirsync\.test$/.test(l))).toBe(true);
    expect(r.inScope().size).toBeGreaterThan(400);
    expect(r.inScope().size).toBeLessThan(500);
  });

  it('is the same company, and changes the same way, for the same seed', () => {
    const a = recorder();
    const b = recorder();
    const ca = new DemoCompany(a.dir, { seed: 7 });
    const cb = new DemoCompany(b.dir, { seed: 7 });
    expect([...a.users.entries()]).toEqual([...b.users.entries()]);
    const steps = (c: DemoCompany) => Array.from({ length: 5 }, () => c.step().map((x) => x.text));
    expect(steps(ca)).toEqual(steps(cb));
  });

  it('hires, loses, renames and moves people each round, and unassigns one department once, in the second round', () => {
    const r = recorder();
    const company = new DemoCompany(r.dir, { people: 100 });
    const rounds: CompanyChange[][] = Array.from({ length: 6 }, () => company.step());
    const kinds = new Set(rounds.flat().map((c) => c.kind));
    for (const kind of ['hire', 'leaver', 'rename', 'move', 'suspension', 'return', 'mass-unassign']) expect(kinds, kind).toContain(kind);
    expect(rounds[1]!.filter((c) => c.kind === 'mass-unassign')).toHaveLength(1);
    expect(rounds.flat().filter((c) => c.kind === 'mass-unassign')).toHaveLength(1);
    expect(r.assignedGroups.has(DemoCompany.groupId('Sales'))).toBe(false);
    const logins = [...r.users.values()].map((u) => u.login);
    expect(new Set(logins).size).toBe(logins.length);
  });
});
