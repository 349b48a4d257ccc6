import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA } from '../../src/scim/scim.schemas.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { approveNow, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

let db: Db;
let drop: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let config: Config;
const ADMIN = 'admin-token-for-scim-tests-0123456';

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
});
afterAll(async () => {
  await close();
  await drop();
});

interface Scim {
  id: string;
  tenantId: string;
  token: string;
  req: (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown) => Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
}

async function scimIntegration(options: { deprovision?: string; threshold?: string; tenant?: string } = {}): Promise<Scim> {
  const slug = options.tenant ?? uniqueSlug();
  const tenant = (await new TenantRepository(db).findBySlug(slug)) ?? (await new TenantRepository(db).create(slug, slug))!;
  const { integration, issued } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim', deprovision: options.deprovision, threshold: options.threshold });
  const token = (issued as { scimToken: string }).scimToken;
  const req: Scim['req'] = async (method, path, body) => {
    const response = await app.inject({
      method,
      url: `/scim/v2/${integration.id}${path}`,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/scim+json' }) },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    });
    return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : undefined, headers: response.headers };
  };
  return { id: integration.id, tenantId: tenant.id, token, req };
}

const userBody = (userName: string, extra: Record<string, unknown> = {}) => ({
  schemas: [USER_SCHEMA],
  userName,
  name: { givenName: userName.split('@')[0], familyName: 'Test' },
  emails: [{ primary: true, value: userName, type: 'work' }],
  active: true,
  ...extra,
});
const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH_OP_SCHEMA], Operations });
const run = (s: Scim) => runNow({ db, config }, s.id);
const users = (s: Scim) => new DirectoryRepository(db).listTenantUsers(s.tenantId);
const groups = (s: Scim) => new DirectoryRepository(db).listTenantGroups(s.tenantId);

describe('SCIM endpoint on the state model', () => {
  it('answers pushes from the store at once and applies them with a run: create, deactivate (lock), reactivate (lock lifted), delete', async () => {
    const s = await scimIntegration();
    const created = await s.req('POST', '/Users', userBody('ann@acme.test', { password: 'p' }));
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe(created.body.meta.location);
    expect(created.body).not.toHaveProperty('password');
    const id = created.body.id;
    expect((await s.req('GET', `/Users/${id}`)).body).toEqual(created.body);

    // A push asks for a run (trigger scim), which a worker picks up.
    const queued = await new RunRepository(db).listForIntegration(s.id);
    expect(queued.map((r) => [r.trigger, r.status])).toEqual([['scim', 'queued']]);
    expect((await run(s)).counts).toMatchObject({ usersCreated: 1 });
    expect(await users(s)).toEqual([expect.objectContaining({ userName: 'ann@acme.test', email: 'ann@acme.test', givenName: 'ann', active: true, locked: false })]);

    expect((await s.req('PATCH', `/Users/${id}`, patchOp({ op: 'replace', value: { active: false } }))).body.active).toBe(false);
    expect((await run(s)).counts).toMatchObject({ usersDeprovisioned: 1 });
    expect(await users(s)).toEqual([expect.objectContaining({ active: false, locked: true })]);

    await s.req('PATCH', `/Users/${id}`, patchOp({ op: 'Replace', path: 'active', value: 'True' }));
    expect((await run(s)).counts).toMatchObject({ usersReprovisioned: 1 });
    expect(await users(s)).toEqual([expect.objectContaining({ active: true, locked: false })]);

    expect((await s.req('DELETE', `/Users/${id}`)).status).toBe(204);
    expect((await s.req('GET', `/Users/${id}`)).status).toBe(404);
    expect((await run(s)).counts).toMatchObject({ usersDeprovisioned: 1 });
    expect(await users(s)).toEqual([expect.objectContaining({ active: false, locked: true })]);
  });

  it('pushes groups with members, renames them, changes members and deletes them', async () => {
    const s = await scimIntegration();
    const [a, b] = await Promise.all(['a@g.test', 'b@g.test'].map(async (n) => (await s.req('POST', '/Users', userBody(n))).body.id as string));
    const group = await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Eng', members: [{ value: a }] });
    expect(group.status).toBe(201);
    expect(group.body.members).toEqual([expect.objectContaining({ value: a, display: 'a@g.test' })]);
    await run(s);
    expect(await groups(s)).toEqual([expect.objectContaining({ name: 'Eng', members: ['a@g.test'] })]);

    const g = group.body.id;
    await s.req('PATCH', `/Groups/${g}`, patchOp({ op: 'replace', value: { id: g, displayName: 'Engineering' } }), );
    await s.req('PATCH', `/Groups/${g}`, patchOp({ op: 'add', path: 'members', value: [{ value: b }] }, { op: 'remove', path: `members[value eq "${a}"]` }));
    expect((await s.req('GET', `/Groups/${g}`)).body).toMatchObject({ displayName: 'Engineering', members: [expect.objectContaining({ value: b })] });
    expect((await s.req('GET', `/Groups?excludedAttributes=members&filter=displayName eq "engineering"`)).body.Resources).toEqual([
      expect.not.objectContaining({ members: expect.anything() }),
    ]);
    await run(s);
    expect(await groups(s)).toEqual([expect.objectContaining({ name: 'Engineering', members: ['b@g.test'] })]);

    expect((await s.req('DELETE', `/Groups/${g}`)).status).toBe(204);
    expect((await run(s)).counts).toMatchObject({ groupsDeleted: 1 });
    expect(await groups(s)).toEqual([]);
  });

  it('refuses members that are not users of this integration, naming them', async () => {
    const s = await scimIntegration();
    const other = await scimIntegration();
    const theirs = (await other.req('POST', '/Users', userBody('x@other.test'))).body.id;
    const refused = await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'G', members: [{ value: theirs }, { value: 'not-an-id' }] });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ scimType: 'invalidValue', detail: expect.stringContaining(theirs) });
    expect((await s.req('GET', '/Groups')).body.totalResults).toBe(0);
    expect((await s.req('GET', `/Users/${theirs}`)).status).toBe(404);
  });

  it('adopts an account no integration owns instead of duplicating it', async () => {
    const slug = uniqueSlug();
    const first = await scimIntegration({ tenant: slug });
    await first.req('POST', '/Users', userBody('carol@acme.test'));
    await run(first);
    await new IntegrationService(db, config).delete(first.id);
    const second = await scimIntegration({ tenant: slug });
    await second.req('POST', '/Users', userBody('Carol@Acme.test'));
    await run(second);
    expect(await users(second)).toEqual([expect.objectContaining({ userName: 'Carol@Acme.test', active: true })]);
  });

  it('holds pushed deactivations past the threshold within the hour, while the SCIM answers stay what the IdP asked', async () => {
    const s = await scimIntegration();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await s.req('POST', '/Users', userBody(`u${i}@w.test`))).body.id);
    await run(s);
    // One deactivation per run, as pushes arrive: the first 5 apply (never more than 5 held), then the window fills.
    const statuses: string[] = [];
    for (const id of ids.slice(0, 8)) {
      expect((await s.req('PATCH', `/Users/${id}`, patchOp({ op: 'replace', value: { active: false } }))).body.active).toBe(false);
      statuses.push((await run(s)).status);
    }
    expect(statuses).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'held', 'held', 'held']);
    expect((await users(s)).filter((u) => !u.active)).toHaveLength(5);
    expect((await s.req('GET', `/Users?filter=active eq false`)).body.totalResults).toBe(8);
    const held = (await new RunRepository(db).listForIntegration(s.id)).find((r) => r.status === 'held')!;
    expect(held.heldReason).toMatch(/applied in the last hour/);
    await approveNow({ db, config }, held.id);
    expect((await users(s)).filter((u) => !u.active)).toHaveLength(8);
  });

  it('counts in the window only the deactivations that still stand: one undone within the hour is among the active users again, not counted twice', async () => {
    const s = await scimIntegration();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await s.req('POST', '/Users', userBody(`u${i}@undo.test`))).body.id);
    await run(s);
    const active = (id: string, on: boolean) => s.req('PATCH', `/Users/${id}`, patchOp({ op: 'replace', value: { active: on } }));
    // Five deactivations, one per run, then all five undone.
    for (const id of ids.slice(0, 5)) {
      await active(id, false);
      expect((await run(s)).status).toBe('succeeded');
    }
    for (const id of ids.slice(0, 5)) await active(id, true);
    expect((await run(s)).counts).toMatchObject({ usersReprovisioned: 5 });
    // Five others: none held, as for a tenant that never saw the first five go.
    const statuses: string[] = [];
    for (const id of ids.slice(5, 11)) {
      await active(id, false);
      statuses.push((await run(s)).status);
    }
    expect(statuses).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'held']);
    const held = (await new RunRepository(db).listForIntegration(s.id)).find((r) => r.status === 'held')!;
    // 15 active users and the 5 deprovisioned in the window: the tenant's 20, each once.
    expect(held.heldReason).toContain("deprovisions 1 of the tenant's 15 active users (with 5 applied in the last hour, 6 of the 20 there were)");
  });

  it('filters on columns and on pushed attributes alike, and never lets a filter reach SQL as code', async () => {
    const s = await scimIntegration();
    const ann = (
      await s.req('POST', '/Users', userBody('Ann@F.test', { externalId: 'Ext-1', title: 'Engineer', [ENTERPRISE_USER_SCHEMA]: { department: 'R&D' }, schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA] }))
    ).body;
    await s.req('POST', '/Users', userBody('bob@f.test', { emails: [{ value: 'bob@home.test', type: 'home' }, { value: 'bob@f.test', type: 'work' }], active: false }));
    const found = async (filter: string) => {
      const r = await s.req('GET', `/Users?filter=${encodeURIComponent(filter)}`);
      expect(r.status).toBe(200);
      return (r.body.Resources as Array<{ userName: string }>).map((u) => u.userName).sort();
    };
    expect(await found('userName eq "ann@f.TEST"')).toEqual(['Ann@F.test']);
    expect(await found('externalId eq "Ext-1"')).toEqual(['Ann@F.test']);
    expect(await found('externalId eq "ext-1"')).toEqual([]);
    expect(await found('emails[type eq "work"].value eq "BOB@f.test"')).toEqual(['bob@f.test']);
    expect(await found('emails[type eq "work"].value eq "bob@home.test"')).toEqual([]);
    expect(await found('emails.value co "home"')).toEqual(['bob@f.test']);
    expect(await found('userName sw "a" or active eq false')).toEqual(['Ann@F.test', 'bob@f.test']);
    expect(await found('not (userName ew "f.test") and title pr')).toEqual([]);
    expect(await found('title eq "engineer" and active eq true')).toEqual(['Ann@F.test']);
    expect(await found(`${ENTERPRISE_USER_SCHEMA}:department eq "r&d"`)).toEqual(['Ann@F.test']);
    expect(await found(`id eq "${ann.id}"`)).toEqual(['Ann@F.test']);
    expect(await found('meta.lastModified gt "2000-01-01T00:00:00Z"')).toEqual(['Ann@F.test', 'bob@f.test']);
    expect(await found(`userName eq "x\\" or 1=1 --"`)).toEqual([]);
    // Values some clients send unquoted or single-quoted are read as strings.
    expect(await found('userName eq ann@f.test')).toEqual(['Ann@F.test']);
    expect(await found("userName eq 'BOB@f.test'")).toEqual(['bob@f.test']);
    expect(await found(`userName eq "'; drop table scim_users; --"`)).toEqual([]);
    for (const bad of ['userName eq', 'userName zz "a"', 'userName eq "a', '"; select 1', 'emails[type eq "work"', 'user"Name eq "a"']) {
      const r = await s.req('GET', `/Users?filter=${encodeURIComponent(bad)}`);
      expect([r.status, r.body.scimType], bad).toEqual([400, 'invalidFilter']);
    }
    const { n } = (await sql<{ n: string }>`select count(*) as n from scim_users where integration_id = ${s.id}`.execute(db)).rows[0]!;
    expect(Number(n)).toBe(2);
  });

  it('lists a user’s groups from the groups’ members, searches by POST, and a PATCH to primary demotes the old primary', async () => {
    const s = await scimIntegration();
    const user = (await s.req('POST', '/Users', userBody('m@g.test', { groups: [{ value: 'ignored' }] }))).body;
    expect(user).not.toHaveProperty('groups');
    const group = (await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ops', members: [{ value: user.id }] })).body;
    expect((await s.req('GET', `/Users/${user.id}`)).body.groups).toEqual([expect.objectContaining({ value: group.id, display: 'Ops' })]);
    const found = await s.req('POST', '/Users/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: 'groups.value eq "' + group.id + '"', attributes: ['userName'] });
    expect(found.body.Resources).toEqual([{ schemas: [USER_SCHEMA], id: user.id, userName: 'm@g.test' }]);
    const patched = await s.req('PATCH', `/Users/${user.id}`, patchOp({ op: 'add', path: 'emails', value: [{ value: 'new@g.test', type: 'home', primary: true }] }));
    expect(patched.body.emails).toEqual([
      { primary: false, value: 'm@g.test', type: 'work' },
      { value: 'new@g.test', type: 'home', primary: true },
    ]);
    await run(s);
    expect(await users(s)).toEqual([expect.objectContaining({ email: 'new@g.test', groups: ['Ops'] })]);
  });

  it('pages with startIndex and count as RFC 7644 §3.4.2.4 says', async () => {
    const s = await scimIntegration();
    for (let i = 0; i < 5; i++) await s.req('POST', '/Users', userBody(`p${i}@p.test`));
    const page = (await s.req('GET', '/Users?startIndex=2&count=2')).body;
    expect(page).toMatchObject({ totalResults: 5, itemsPerPage: 2, startIndex: 2 });
    expect(page.Resources.map((u: { userName: string }) => u.userName)).toEqual(['p1@p.test', 'p2@p.test']);
    expect((await s.req('GET', '/Users?count=0')).body).toMatchObject({ totalResults: 5, itemsPerPage: 0, Resources: [] });
    expect((await s.req('GET', '/Users?count=-3&startIndex=-1')).body).toMatchObject({ totalResults: 5, itemsPerPage: 0, startIndex: 1 });
    expect((await s.req('GET', '/Users?count=abc')).body).toMatchObject({ scimType: 'invalidValue' });
  });

  it('authenticates: another integration’s token 401, no token 401, disabled 403, rotated token works through its grace', async () => {
    const s = await scimIntegration();
    const other = await scimIntegration();
    const get = (token: string | undefined) =>
      app.inject({ method: 'GET', url: `/scim/v2/${s.id}/ServiceProviderConfig`, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    expect((await get(s.token)).statusCode).toBe(200);
    expect((await get(other.token)).statusCode).toBe(401);
    expect((await get(undefined)).headers['www-authenticate']).toMatch(/^Bearer/);
    // The bare token too, as IdP settings that send what was pasted do; and a base URL pasted with a trailing slash.
    expect((await app.inject({ method: 'GET', url: `/scim/v2/${s.id}//Users`, headers: { authorization: s.token } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/scim/v2/${s.id}/Users`, headers: { authorization: `Basic ${s.token}` } })).statusCode).toBe(401);
    const service = new IntegrationService(db, config);
    const rotation = await service.rotateScimToken(s.id, '1h');
    expect(rotation.previousScimTokenValidUntil).not.toBeNull();
    expect((await get(s.token)).statusCode).toBe(200);
    expect((await get(rotation.scimToken)).statusCode).toBe(200);
    await service.rotateScimToken(s.id, '0');
    expect((await get(rotation.scimToken)).statusCode).toBe(401);
    await service.setEnabled(other.id, false);
    const disabled = await app.inject({ method: 'GET', url: `/scim/v2/${other.id}/Users`, headers: { authorization: `Bearer ${other.token}` } });
    expect([disabled.statusCode, JSON.parse(disabled.body).schemas]).toEqual([403, ['urn:ietf:params:scim:api:messages:2.0:Error']]);
    // A scim integration takes no webhooks; a pulled one has no SCIM endpoint.
    expect((await app.inject({ method: 'POST', url: `/webhooks/${s.id}`, headers: { authorization: s.token }, payload: {} })).statusCode).toBe(404);
  });

  it('answers bad bodies with SCIM errors: malformed JSON, oversized, wrong media type', async () => {
    const s = await scimIntegration();
    const send = (payload: string, contentType = 'application/scim+json') =>
      app.inject({ method: 'POST', url: `/scim/v2/${s.id}/Users`, headers: { authorization: `Bearer ${s.token}`, 'content-type': contentType }, payload });
    const malformed = await send('{"schemas": [');
    expect([malformed.statusCode, JSON.parse(malformed.body).scimType]).toEqual([400, 'invalidSyntax']);
    expect(malformed.headers['content-type']).toMatch(/^application\/scim\+json/);
    const huge = await send(JSON.stringify(userBody('big@x.test', { title: 'x'.repeat(9 * 1024 * 1024) })));
    expect(huge.statusCode).toBe(413);
    expect((await send(JSON.stringify(userBody('json@x.test')), 'application/json')).statusCode).toBe(201);
    expect((await send('userName=x', 'application/x-www-form-urlencoded')).statusCode).toBe(415);
  });

  it('is created and its token rotated through the admin API as through the CLI', async () => {
    const slug = uniqueSlug();
    await new TenantRepository(db).create(slug, slug);
    const api = (method: 'POST' | 'GET', url: string, payload?: object) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload ? { payload } : {}) });
    const created = await api('POST', '/api/v1/integrations', { tenant: slug, provider: 'scim', deprovision: 'delete', threshold: 10 });
    expect(created.statusCode).toBe(201);
    const body = JSON.parse(created.body);
    expect(body).toMatchObject({ provider: 'scim', deprovisionMode: 'delete', thresholdPercent: 10, scimBaseUrl: expect.stringMatching(new RegExp(`/scim/v2/${body.id}$`)) });
    const scim = (token: string) => app.inject({ method: 'GET', url: `/scim/v2/${body.id}/Users`, headers: { authorization: `Bearer ${token}` } });
    expect((await scim(body.scimToken)).statusCode).toBe(200);
    const rotated = JSON.parse((await api('POST', `/api/v1/integrations/${body.id}/rotate-scim-token`, { grace: '0' })).body);
    expect(rotated).toMatchObject({ id: body.id, previousScimTokenValidUntil: null });
    expect((await scim(body.scimToken)).statusCode).toBe(401);
    expect((await scim(rotated.scimToken)).statusCode).toBe(200);
    const refused = await api('POST', '/api/v1/integrations', { tenant: slug, provider: 'scim', baseUrl: 'https://x.okta.com' });
    expect([refused.statusCode, JSON.parse(refused.body).error.message]).toEqual([400, expect.stringMatching(/^baseUrl does not apply to a scim integration/)]);
  });

  it('re-reads only the pushed users that changed, and still converges on deletes, member changes and reactivation', async () => {
    const s = await scimIntegration({ deprovision: 'remove-access' });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await s.req('POST', '/Users', userBody(`inc${i}@i.test`))).body.id);
    const g = (await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Inc', members: ids.map((value) => ({ value })) })).body.id;
    expect((await runNow({ db, config }, s.id, { trigger: 'scim' })).counts).toMatchObject({ usersCreated: 4, membershipsAdded: 4 });

    await s.req('PATCH', `/Users/${ids[0]}`, patchOp({ op: 'replace', path: 'displayName', value: 'Renamed' }));
    const one = await runNow({ db, config }, s.id, { trigger: 'scim' });
    expect(one.counts).toMatchObject({ usersUpdated: 1 });
    expect(one.stats).toMatchObject({ usersReread: 1 });
    expect((await runNow({ db, config }, s.id, { trigger: 'scim' })).stats).toMatchObject({ usersReread: 0 });

    // A deleted member leaves the group (its version moves); remove-access removes the account.
    await s.req('DELETE', `/Users/${ids[1]}`);
    expect((await runNow({ db, config }, s.id, { trigger: 'scim' })).counts).toMatchObject({ usersDeprovisioned: 1 });
    expect((await groups(s))[0]!.members).toEqual(['inc0@i.test', 'inc2@i.test', 'inc3@i.test']);

    // Deactivated (account and memberships removed), then reactivated: its membership comes back from what was pushed.
    await s.req('PATCH', `/Users/${ids[2]}`, patchOp({ op: 'replace', value: { active: false } }));
    await runNow({ db, config }, s.id, { trigger: 'scim' });
    expect((await groups(s))[0]!.members).toEqual(['inc0@i.test', 'inc3@i.test']);
    await s.req('PATCH', `/Users/${ids[2]}`, patchOp({ op: 'replace', value: { active: true } }));
    expect((await runNow({ db, config }, s.id, { trigger: 'scim' })).counts).toMatchObject({ usersReprovisioned: 1, membershipsAdded: 1 });
    expect((await groups(s))[0]!.members).toEqual(['inc0@i.test', 'inc2@i.test', 'inc3@i.test']);
    expect((await s.req('GET', `/Groups/${g}`)).body.members).toHaveLength(3);
  });

  describe('targeted runs (what a push asks for)', () => {
    const pushRun = (s: Scim) => runNow({ db, config }, s.id, { trigger: 'scim' });
    const unapplied = async (s: Scim) =>
      Number((await sql<{ n: string }>`select count(*) as n from scim_unapplied where integration_id = ${s.id}::uuid`.execute(db)).rows[0]!.n);

    it('reads only what was written since, applies it, and forgets it; a group member change keeps the members nobody wrote', async () => {
      const s = await scimIntegration();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await s.req('POST', '/Users', userBody(`tg${i}@t.test`))).body.id);
      const g = (await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'T', members: ids.slice(0, 4).map((value) => ({ value })) })).body.id;
      const first = await pushRun(s);
      expect(first).toMatchObject({ mode: 'targeted', status: 'succeeded', counts: { usersCreated: 5, groupsCreated: 1, membershipsAdded: 4 } });
      expect(await unapplied(s)).toBe(0);

      // One member added: the group is read whole, the four members nobody wrote stay.
      await s.req('PATCH', `/Groups/${g}`, patchOp({ op: 'add', path: 'members', value: [{ value: ids[4] }] }));
      const added = await pushRun(s);
      expect(added.counts).toMatchObject({ membershipsAdded: 1, membershipsRemoved: 0 });
      expect(added.stats).toMatchObject({ usersReread: 0, pushesApplied: 1 });
      expect((await groups(s))[0]!.members).toHaveLength(5);

      // One user deactivated (suspend): only that user is read; its memberships stay (suspend keeps them).
      await s.req('PATCH', `/Users/${ids[0]}`, patchOp({ op: 'replace', value: { active: false } }));
      const off = await pushRun(s);
      expect(off.counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 0 });
      expect(off.stats).toMatchObject({ usersReread: 1 });

      // Nothing written: nothing read, nothing planned.
      expect((await pushRun(s)).stats).toMatchObject({ usersReread: 0, pushesApplied: 0 });
      // And a full run agrees that nothing is left to do.
      expect(Object.values((await runNow({ db, config }, s.id, { dryRun: true })).counts ?? {}).every((n) => n === 0)).toBe(true);
    });

    it('counts what a deleted group or user takes along, as a full run would (the threshold weighs it)', async () => {
      const s = await scimIntegration({ deprovision: 'remove-access' });
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await s.req('POST', '/Users', userBody(`td${i}@t.test`))).body.id);
      const a = (await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'A', members: ids.map((value) => ({ value })) })).body.id;
      await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'B', members: ids.slice(0, 2).map((value) => ({ value })) });
      expect((await pushRun(s)).counts).toMatchObject({ groupsCreated: 2, membershipsAdded: 6 });

      expect((await s.req('DELETE', `/Groups/${a}`)).status).toBe(204);
      const gone = await pushRun(s);
      expect(gone.counts).toMatchObject({ groupsDeleted: 1, membershipsRemoved: 4 });
      const changes = await new RunRepository(db).listChanges(gone.id);
      expect(changes.filter((c) => c.kind === 'membership.removed').map((c) => c.subject).sort()).toEqual(ids.map((_, i) => expect.stringContaining(`td${i}@t.test`)));

      expect((await s.req('DELETE', `/Users/${ids[0]}`)).status).toBe(204);
      expect((await pushRun(s)).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 1 });
      expect((await groups(s)).map((g) => g.members)).toEqual([['td1@t.test']]);
    });

    it('still applies a write that committed after the run read what was written (a lower seq committing late)', async () => {
      const s = await scimIntegration();
      // A transaction that takes its seq first and commits last: the outbox trap.
      let commit!: () => void;
      const held = new Promise<void>((resolve) => (commit = resolve));
      let inserted!: () => void;
      const insertedYet = new Promise<void>((resolve) => (inserted = resolve));
      const late = db.transaction().execute(async (trx) => {
        await sql`insert into scim_users (integration_id, user_name, active, resource) values (${s.id}::uuid, 'late@t.test', true, '{"userName":"late@t.test"}'::jsonb)`.execute(trx);
        inserted();
        await held;
      });
      await insertedYet;
      expect((await s.req('POST', '/Users', userBody('early@t.test'))).status).toBe(201);
      const before = await pushRun(s);
      expect(before.counts).toMatchObject({ usersCreated: 1 });
      commit();
      await late;
      expect(await unapplied(s)).toBe(1);
      expect((await pushRun(s)).counts).toMatchObject({ usersCreated: 1 });
      expect((await users(s)).map((u) => u.userName).sort()).toEqual(['early@t.test', 'late@t.test']);
    });

    it('keeps what a held run did not apply, and applies it once approved', async () => {
      const s = await scimIntegration({ threshold: '10' });
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await s.req('POST', '/Users', userBody(`h${i}@t.test`))).body.id);
      await pushRun(s);
      for (const id of ids.slice(0, 8)) await s.req('DELETE', `/Users/${id}`);
      const heldRun = await pushRun(s);
      expect(heldRun.status).toBe('held');
      expect(await unapplied(s)).toBe(8);
      expect((await approveNow({ db, config }, heldRun.id)).counts).toMatchObject({ usersDeprovisioned: 8 });
      expect(await unapplied(s)).toBe(0);
      expect((await users(s)).filter((u) => u.active)).toHaveLength(4);
    });

    it('reads everything once a day all the same (drift heals), and grants an account to a member who had none', async () => {
      const s = await scimIntegration();
      const ann = (await s.req('POST', '/Users', userBody('day@t.test'))).body.id;
      expect((await pushRun(s)).mode).toBe('targeted');
      await s.req('POST', '/Users', userBody('day2@t.test'));
      expect((await pushRun(s)).counts).toMatchObject({ usersCreated: 1 });
      // The tenant drifts behind dirsync's back; nothing pushed names it.
      await sql`update accounts set display_name = 'drifted' where integration_id = ${s.id}::uuid and user_name = 'day2@t.test'`.execute(db);
      await sql`update integrations set created_at = now() - interval '25 hours' where id = ${s.id}::uuid`.execute(db);
      await sql`update runs set finished_at = now() - interval '25 hours' where integration_id = ${s.id}::uuid`.execute(db);
      await s.req('PATCH', `/Users/${ann}`, patchOp({ op: 'replace', path: 'title', value: 'x' }));
      const daily = await pushRun(s);
      expect(daily).toMatchObject({ mode: 'full', counts: { usersUpdated: 2 } });
      expect((await pushRun(s)).mode).toBe('targeted');

      // A member whose account is gone (here: removed behind dirsync's back) gets one when a group names it.
      await sql`delete from accounts where integration_id = ${s.id}::uuid and user_name = 'day2@t.test'`.execute(db);
      const day2 = (await s.req('GET', `/Users?filter=${encodeURIComponent('userName eq "day2@t.test"')}`)).body.Resources[0].id;
      await s.req('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'D', members: [{ value: day2 }] });
      expect((await pushRun(s)).counts).toMatchObject({ usersCreated: 1, groupsCreated: 1, membershipsAdded: 1 });
    });

    it('reads the whole scope instead when more was written than a targeted run takes', async () => {
      const s = await scimIntegration();
      const id = (await s.req('POST', '/Users', userBody('many@t.test'))).body.id;
      await sql`insert into scim_unapplied (integration_id, resource_type, resource_id) select ${s.id}::uuid, 'User', ${id}::uuid from generate_series(1, 5001)`.execute(db);
      const wide = await pushRun(s);
      expect(wide).toMatchObject({ mode: 'full', status: 'succeeded', counts: { usersCreated: 1 } });
      expect(await unapplied(s)).toBe(0);
    });
  });
});
