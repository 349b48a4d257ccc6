import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { approveNow, createOktaIntegration, runNow } from '../support/fixtures.js';

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => dropDb());

const USERS = 8;
const GROUPS = ['00gA', '00gB'];

type Step =
  | { op: 'assign' | 'unassign' | 'suspend' | 'activate' | 'email'; user: number }
  | { op: 'join' | 'leave'; user: number; group: number }
  | { op: 'toggleGroup'; group: number }
  | { op: 'run' }
  | { op: 'failingRun'; failAt: number }
  | { op: 'crashingRun'; crashAfter: number };

const user = fc.integer({ min: 0, max: USERS - 1 });
const groupIx = fc.integer({ min: 0, max: GROUPS.length - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constantFrom('assign', 'unassign', 'suspend', 'activate', 'email'), user }),
  fc.record({ op: fc.constantFrom('join', 'leave'), user, group: groupIx }),
  fc.record({ op: fc.constant('toggleGroup'), group: groupIx }),
  fc.record({ op: fc.constant('run') }),
  fc.record({ op: fc.constant('failingRun'), failAt: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ op: fc.constant('crashingRun'), crashAfter: fc.integer({ min: 1, max: 4 }) }),
) as fc.Arbitrary<Step>;

describe('convergence under random IdP changes and injected failures (real Postgres)', () => {
  it('never deprovisions a user the IdP has active and in scope, and converges after a clean run', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 14 }), fc.constantFrom('suspend', 'remove-access', 'delete'), async (steps, mode) => {
        const okta = await new FakeOkta().start();
        okta.maxPageSize = 2; // many pages, so a failure can fall after some users were read
        try {
          const domain = `${uniqueSlug('p')}.test`;
          const app = okta.addApp('0oaP');
          const ids = Array.from({ length: USERS }, (_, i) => okta.addUser(`u${i}@${domain}`, { id: `00u${i}` }).id);
          for (const id of ids.slice(0, 5)) app.users.add(id);
          for (const g of GROUPS) okta.addGroup(`group ${g}`, { id: g });
          app.groups.add(GROUPS[0]!);
          const t = await createOktaIntegration(db, config, okta, { appId: '0oaP', deprovision: mode });
          const deps = { db, config };
          const directory = new DirectoryRepository(db);

          /** Logins the IdP has active and in scope right now. */
          const inScope = () => {
            const scoped = okta.appUserScopes('0oaP');
            return new Set([...scoped.keys()].map((id) => okta.users.get(id)!).filter((u) => u.status === 'ACTIVE').map((u) => u.profile.login));
          };
          const activeLocally = async () => new Set((await directory.listTenantUsers(t.tenantId)).filter((u) => u.active && !u.locked).map((u) => u.userName));

          const state = async () => ({ users: await directory.listTenantUsers(t.tenantId), groups: await directory.listTenantGroups(t.tenantId) });
          const checkedRun = async (run: () => Promise<{ status: string }>) => {
            const scope = inScope();
            const before = await state();
            const result = await run().catch(() => undefined);
            const after = await state();
            const activeAfter = new Set(after.users.filter((u) => u.active && !u.locked).map((u) => u.userName));
            for (const u of before.users) {
              if (u.active && !u.locked && scope.has(u.userName)) expect(activeAfter.has(u.userName), `${u.userName} wrongly deprovisioned`).toBe(true);
            }
            if (result?.status === 'failed') expect(after, 'a failed run changed the tenant').toEqual(before);
          };

          for (const s of steps) {
            const id = 'user' in s ? ids[s.user]! : '';
            switch (s.op) {
              case 'assign': app.users.add(id); break;
              case 'unassign': app.users.delete(id); break;
              case 'suspend': okta.updateUser(id, { status: 'SUSPENDED' }); break;
              case 'activate': okta.updateUser(id, { status: 'ACTIVE' }); break;
              case 'email': okta.updateUser(id, { profile: { email: `${Math.random().toString(36).slice(2)}@x.test` } }); break;
              case 'join': okta.addMember(GROUPS[s.group]!, id); break;
              case 'leave': okta.removeMember(GROUPS[s.group]!, id); break;
              case 'toggleGroup': {
                const g = GROUPS[s.group]!;
                if (app.groups.has(g)) app.groups.delete(g);
                else app.groups.add(g);
                break;
              }
              case 'run':
                await checkedRun(() => runNow(deps, t.integrationId));
                break;
              case 'failingRun': {
                const start = okta.requests.length;
                okta.fault = ({ n }) => (n - start >= s.failAt ? { status: 503, body: { errorCode: 'E0000009', errorSummary: 'Service Unavailable' } } : undefined);
                await checkedRun(() => runNow(deps, t.integrationId));
                okta.fault = undefined;
                break;
              }
              case 'crashingRun': {
                let batches = 0;
                const crashing = { ...deps, batchSize: 1, afterBatch: () => { if (++batches === s.crashAfter) throw new Error('killed'); } };
                await checkedRun(() => runNow(crashing, t.integrationId));
                // The killed worker's heartbeat goes stale; the next claim fails that run.
                await db.updateTable('runs').set({ heartbeat_at: new Date(0) }).where('status', '=', 'running').execute();
                break;
              }
            }
          }

          // A clean run (approving it if the threshold held it) converges on the IdP's projection.
          let final = await runNow(deps, t.integrationId);
          if (final.status === 'held') final = await approveNow(deps, final.id);
          expect(final.status).toBe('succeeded');
          expect(await activeLocally()).toEqual(inScope());
          const groups = await directory.listTenantGroups(t.tenantId);
          expect(groups.map((g) => g.name).sort()).toEqual([...app.groups].map((g) => `group ${g}`).sort());
          for (const g of groups) {
            const gid = g.name.replace('group ', '');
            const expected = [...okta.members.get(gid)!].filter((uid) => okta.appUserScopes('0oaP').has(uid)).map((uid) => okta.users.get(uid)!.profile.login);
            // Members who hold access (active, or suspended in suspend mode) are exactly the IdP's.
            const holders = new Set((await directory.listTenantUsers(t.tenantId)).map((u) => u.userName));
            expect(g.members.filter((m) => expected.includes(m)).sort()).toEqual(expected.filter((m) => holders.has(m)).sort());
          }
          const again = await runNow(deps, t.integrationId);
          expect(again.counts).toMatchObject({ usersCreated: 0, usersUpdated: 0, usersDeprovisioned: 0, usersReprovisioned: 0, membershipsAdded: 0, membershipsRemoved: 0 });
        } finally {
          await okta.stop();
        }
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
