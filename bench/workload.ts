import { seededRandom } from '../src/demo/seeded-random.js';

/**
 * A deterministic synthetic Okta directory for benchmarks: the same parameters always give
 * the same users, groups, memberships and app assignments, and the same churn.
 */

export interface WorkloadSize {
  readonly users: number;
  readonly groups: number;
  readonly memberships: number;
}

export const WORKLOADS: Record<string, WorkloadSize> = {
  smoke: { users: 2_000, groups: 40, memberships: 10_000 },
  w100k: { users: 100_000, groups: 2_000, memberships: 500_000 },
  w1m: { users: 1_000_000, groups: 10_000, memberships: 5_000_000 },
};

export interface BenchUser {
  id: string;
  status: string;
  login: string;
  email: string;
  firstName: string;
  lastName: string;
  department: string;
}

export interface BenchDirectory {
  users: BenchUser[];
  groups: { id: string; name: string }[];
  /** group index -> member user indexes */
  members: Int32Array[];
}


const DEPARTMENTS = ['Engineering', 'Sales', 'Support', 'Finance', 'Legal', 'Marketing', 'Operations', 'People'];

export function userId(i: number): string {
  return `00u${i.toString(36).padStart(8, '0')}`;
}

export function generate(size: WorkloadSize, seed = 42): BenchDirectory {
  const random = seededRandom(seed);
  const users: BenchUser[] = new Array(size.users);
  for (let i = 0; i < size.users; i++) {
    const login = `user${i}@bench.example.com`;
    users[i] = {
      id: userId(i),
      status: 'ACTIVE',
      login,
      email: login,
      firstName: `First${i}`,
      lastName: `Last${i % 9973}`,
      department: DEPARTMENTS[i % DEPARTMENTS.length]!,
    };
  }
  const groups = Array.from({ length: size.groups }, (_, g) => ({ id: `00g${g.toString(36).padStart(8, '0')}`, name: `Group ${g}` }));
  const perGroup = Math.floor(size.memberships / size.groups);
  const members = groups.map(() => {
    const set = new Set<number>();
    while (set.size < Math.min(perGroup, size.users)) set.add(Math.floor(random() * size.users));
    return Int32Array.from([...set].sort((a, b) => a - b));
  });
  return { users, groups, members };
}

/**
 * Churn of `share` of the users (default 1%, at least 3): a third of it new hires, a third
 * profile updates, a third deactivated in Okta (deprovisioned), plus as many membership moves.
 * Returns the changed directory and how many of each.
 */
export function churn(dir: BenchDirectory, seed = 7, share = 0.01): { dir: BenchDirectory; created: number; updated: number; removed: number; moved: number } {
  const random = seededRandom(seed);
  const n = Math.max(3, Math.floor(dir.users.length * share));
  const third = Math.floor(n / 3);
  const users = dir.users.slice();
  const touched = new Set<number>();
  const pick = () => {
    let i: number;
    do i = Math.floor(random() * users.length);
    while (touched.has(i));
    touched.add(i);
    return i;
  };
  for (let k = 0; k < third; k++) {
    const i = pick();
    users[i] = { ...users[i]!, department: `${users[i]!.department} (moved)` };
  }
  for (let k = 0; k < third; k++) {
    const i = pick();
    users[i] = { ...users[i]!, status: 'DEPROVISIONED' };
  }
  const kept = users;
  const base = dir.users.length;
  for (let k = 0; k < third; k++) {
    const i = base + k;
    const login = `user${i}@bench.example.com`;
    kept.push({ id: userId(i), status: 'ACTIVE', login, email: login, firstName: `First${i}`, lastName: 'New', department: 'Engineering' });
  }
  // Membership moves: in `third` groups, swap one member for another.
  const members = dir.members.map((m) => m);
  let moved = 0;
  for (let k = 0; k < third && members.length > 0; k++) {
    const g = Math.floor(random() * members.length);
    const list = Array.from(members[g]!);
    if (list.length === 0) continue;
    list[Math.floor(random() * list.length)] = Math.floor(random() * base);
    members[g] = Int32Array.from([...new Set(list)].sort((a, b) => a - b));
    moved += 1;
  }
  return { dir: { users: kept, groups: dir.groups, members }, created: third, updated: third, removed: third, moved };
}
