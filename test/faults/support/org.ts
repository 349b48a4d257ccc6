import type { FakeOkta } from '../../support/fake-okta.js';

/**
 * A large Okta org for the process-level scenarios: every second user assigned to the app
 * directly, user i in group j when (i + j) is a multiple of `memberEvery`, and the groups
 * `assignGroup` picks assigned to the app (bringing their members).
 */
export function populateOktaOrg(
  okta: FakeOkta,
  options: { appId: string; users: number; groups: number; domain: string; memberEvery: number; assignGroup?: (j: number) => boolean },
): void {
  const app = okta.addApp(options.appId);
  const users = Array.from({ length: options.users }, (_, i) => okta.addUser(`u${i}@${options.domain}`));
  for (const [i, u] of users.entries()) if (i % 2 === 0) app.users.add(u.id);
  for (let j = 0; j < options.groups; j++) {
    const g = okta.addGroup(`Team ${j}`);
    for (const [i, u] of users.entries()) if ((i + j) % options.memberEvery === 0) okta.addMember(g.id, u.id);
    if (options.assignGroup?.(j) ?? true) app.groups.add(g.id);
  }
}
