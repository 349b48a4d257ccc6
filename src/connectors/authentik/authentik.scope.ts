/**
 * Who an authentik application lets in, from its policy bindings, computed without IO.
 *
 * authentik grants an application to a user when its bindings pass: a user binding passes
 * for that user, a group binding for members of that group or of any group below it, and
 * `negate` inverts a binding. With engine mode `any` one passing binding is enough, with
 * `all` every binding must pass. Disabled bindings do not count. Bindings to policies
 * (expressions, reputation, ...) cannot be evaluated outside authentik and are ignored
 * (reported in the run's stats). An application with no user or group bindings is open to
 * everyone, as in authentik itself.
 */

export interface Binding {
  readonly enabled: boolean;
  readonly negate: boolean;
  readonly user: string | null;
  readonly group: string | null;
  readonly policy: string | null;
}

export interface AppScopeInput {
  readonly mode: 'any' | 'all';
  readonly bindings: readonly Binding[];
  /** user id -> ids of the groups the user is a direct member of */
  readonly userGroups: ReadonlyMap<string, readonly string[]>;
  /** group id -> ids of its parent groups */
  readonly groupParents: ReadonlyMap<string, readonly string[]>;
}

export interface AppScope {
  /** Users the application admits, or 'all' for an application open to everyone. */
  readonly users: ReadonlySet<string> | 'all';
  /** Groups bound to the application (not negated); 'all' for an application open to everyone. */
  readonly groups: ReadonlySet<string> | 'all';
  readonly ignoredPolicyBindings: number;
}

export function appScope(input: AppScopeInput): AppScope {
  const active = input.bindings.filter((b) => b.enabled);
  const usable = active.filter((b) => b.user !== null || b.group !== null);
  const ignoredPolicyBindings = active.length - usable.length;
  if (usable.length === 0) return { users: 'all', groups: 'all', ignoredPolicyBindings };

  const ancestors = ancestorsOf(input.groupParents);
  const effectiveGroups = (userId: string): Set<string> => {
    const set = new Set<string>();
    for (const g of input.userGroups.get(userId) ?? []) {
      set.add(g);
      for (const a of ancestors(g)) set.add(a);
    }
    return set;
  };
  const passes = (b: Binding, userId: string, groups: Set<string>): boolean => {
    const matches = b.user !== null ? b.user === userId : groups.has(b.group as string);
    return matches !== b.negate;
  };
  const users = new Set<string>();
  for (const userId of input.userGroups.keys()) {
    const groups = effectiveGroups(userId);
    const results = usable.map((b) => passes(b, userId, groups));
    if (input.mode === 'all' ? results.every(Boolean) : results.some(Boolean)) users.add(userId);
  }
  const groups = new Set(usable.filter((b) => b.group !== null && !b.negate).map((b) => b.group as string));
  return { users, groups, ignoredPolicyBindings };
}

/** Ancestors through `parents` (group id -> the ids of every group above it), memoized, safe against cycles. */
export function ancestorsOf(parents: ReadonlyMap<string, readonly string[]>): (group: string) => Set<string> {
  const memo = new Map<string, Set<string>>();
  const visit = (group: string, path: Set<string>): Set<string> => {
    const known = memo.get(group);
    if (known) return known;
    const result = new Set<string>();
    for (const p of parents.get(group) ?? []) {
      if (path.has(p)) continue;
      result.add(p);
      for (const a of visit(p, new Set([...path, p]))) result.add(a);
    }
    memo.set(group, result);
    return result;
  };
  return (group) => visit(group, new Set([group]));
}

/** Members of each group, counting members of groups below it, as authentik's group checks do. */
export function effectiveMembers(
  userGroups: ReadonlyMap<string, readonly string[]>,
  groupParents: ReadonlyMap<string, readonly string[]>,
): Map<string, Set<string>> {
  const ancestors = ancestorsOf(groupParents);
  const members = new Map<string, Set<string>>();
  const add = (g: string, u: string) => {
    let set = members.get(g);
    if (!set) members.set(g, (set = new Set()));
    set.add(u);
  };
  for (const [userId, groups] of userGroups) {
    for (const g of groups) {
      add(g, userId);
      for (const a of ancestors(g)) add(a, userId);
    }
  }
  return members;
}

/** Descendants through `parents` (group id -> the ids of every group below it), safe against cycles. */
export function descendantsOf(groupParents: ReadonlyMap<string, readonly string[]>): (group: string) => Set<string> {
  const children = new Map<string, string[]>();
  for (const [child, parents] of groupParents) {
    for (const p of parents) children.set(p, [...(children.get(p) ?? []), child]);
  }
  return (group) => {
    const found = new Set<string>();
    const queue = [...(children.get(group) ?? [])];
    while (queue.length > 0) {
      const g = queue.pop() as string;
      if (g === group || found.has(g)) continue;
      found.add(g);
      queue.push(...(children.get(g) ?? []));
    }
    return found;
  };
}
