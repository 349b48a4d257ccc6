import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig } from '../support/env.js';
import { approveNow, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';
import {
  ACME,
  ENTERPRISE,
  GROUP_SCHEMA,
  PATCH_OP,
  ScimClient,
  type ScimIntegration,
  USER_SCHEMA,
  createScimIntegration,
  errorProblems,
  json,
  listProblems,
} from './scim-oracle.js';

/**
 * Bad and hostile input to the SCIM endpoint. Expected answers come from RFC 7644 §3.12 (error
 * responses), §3.4.2 (filters, paging), §3.5.2 (PATCH), RFC 7643 (types), SPEC ("Bad input is
 * answered 400 (HTTP) ... never 5xx", "A disabled integration ... its webhook and SCIM endpoints
 * reject every request", "nothing the IdP sends is lost") and IDP-FACTS (Okta's SCIM checks).
 * Every exchange fails the test on a 5xx (ScimClient).
 */

let db: Db;
let config: Config;
let drop: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let A: ScimIntegration;
let B: ScimIntegration;
let a: ScimClient;
let b: ScimClient;
const ids: Record<string, string> = {};

const user = (userName: string, extra: Record<string, unknown> = {}) => ({ schemas: [USER_SCHEMA], userName, ...extra });

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
  ({ app, close } = await startTestServer(db, config));
  A = await createScimIntegration(db, config, { deprovision: 'suspend' });
  B = await createScimIntegration(db, config, { deprovision: 'suspend' });
  a = new ScimClient(app, A.integrationId, A.token);
  b = new ScimClient(app, B.integrationId, B.token);
  const mk = async (c: ScimClient, key: string, path: string, body: unknown) => {
    const res = await c.send('POST', path, body);
    if (res.statusCode !== 201) throw new Error(`setup: POST ${path} -> ${res.statusCode} ${res.body}\n${c.transcript()}`);
    ids[key] = json(res).id as string;
  };
  await mk(a, 'alice', '/Users', user('alice@bad.test', { name: { givenName: 'Alice', familyName: 'Liddell' }, displayName: 'Alice L', emails: [{ value: 'alice@bad.test', type: 'work', primary: true }] }));
  await mk(a, 'bob', '/Users', user('bob@bad.test', { displayName: 'Bob' }));
  await mk(a, 'eng', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Eng', members: [{ value: ids.alice }, { value: ids.bob }] });
  await mk(b, 'carol', '/Users', user('carol@other.test', { displayName: 'Carol' }));
  await mk(b, 'ops', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ops', members: [{ value: ids.carol }] });
}, 60_000);
afterAll(async () => {
  await close?.();
  await drop?.();
});

function expectError(res: LightMyRequestResponse, status: number | number[], scimType?: string | string[], needDetail = true): void {
  const p = errorProblems(res, status, scimType);
  if (needDetail && res.statusCode === (Array.isArray(status) ? res.statusCode : status)) {
    try {
      const body = JSON.parse(res.body) as Record<string, unknown>;
      if (typeof body.detail !== 'string' || body.detail === '') p.push(`no "detail" sentence: ${res.body.slice(0, 200)}`);
    } catch {
      /* reported by errorProblems */
    }
  }
  expect(p, `${res.statusCode} ${res.body.slice(0, 300)}`).toEqual([]);
}

/** Everything integration `c` holds, as the SCIM endpoint lists it (meta included: a rejected request must not even touch lastModified). */
async function snapshot(c: ScimClient): Promise<string> {
  const out: Record<string, unknown[]> = {};
  for (const kind of ['Users', 'Groups']) {
    const res = await c.send('GET', `/${kind}?startIndex=1&count=1000`);
    expect(res.statusCode).toBe(200);
    out[kind] = ((json(res).Resources ?? []) as Record<string, unknown>[]).sort((x, y) => String(x.id).localeCompare(String(y.id)));
  }
  return JSON.stringify(out);
}

/** Runs `f`; both integrations' resources must read the same afterwards. */
async function unchanged(f: () => Promise<void>): Promise<void> {
  const before = [await snapshot(a), await snapshot(b)];
  await f();
  expect([await snapshot(a), await snapshot(b)], 'a rejected request changed stored state').toEqual(before);
}

describe('discovery (RFC 7644 §4)', () => {
  it('serves ServiceProviderConfig, ResourceTypes and Schemas', async () => {
    const spc = await a.send('GET', '/ServiceProviderConfig');
    expect(spc.statusCode).toBe(200);
    const body = json(spc);
    expect(body.schemas).toContain('urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig');
    expect(body.patch).toMatchObject({ supported: true });
    expect(body.filter).toMatchObject({ supported: true });
    expect(typeof (body.filter as Record<string, unknown>).maxResults).toBe('number');
    const types = await a.send('GET', '/ResourceTypes');
    expect(types.statusCode).toBe(200);
    const resources = (json(types).Resources ?? json(types)) as Record<string, unknown>[];
    expect(resources.map((r) => r.endpoint).sort()).toEqual(['/Groups', '/Users']);
    const schemas = await a.send('GET', '/Schemas');
    expect(schemas.statusCode).toBe(200);
    const schemaIds = ((json(schemas).Resources ?? json(schemas)) as Record<string, unknown>[]).map((s) => s.id);
    expect(schemaIds).toEqual(expect.arrayContaining([USER_SCHEMA, GROUP_SCHEMA]));
  });
});

describe('malformed bodies (RFC 7644 §3.12 invalidSyntax)', () => {
  it.each([
    ['POST', '/Users', '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": '],
    ['POST', '/Groups', '{displayName: Eng}'],
    ['PUT', '/Users/:alice', '{"userName": "alice@bad.test",}'],
    ['PATCH', '/Users/:alice', '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [}'],
    ['POST', '/Users', 'not json at all'],
    ['POST', '/Users', ''],
  ])('%s %s with body %j is 400 invalidSyntax with a SCIM error and changes nothing', async (method, path, raw) => {
    await unchanged(async () => {
      const res = await a.send(method as 'POST', path.replace(':alice', ids.alice!), undefined, { raw });
      expectError(res, 400, 'invalidSyntax');
    });
  });

  it('a JSON body that is not an object (an array, a string) is 400', async () => {
    await unchanged(async () => {
      expectError(await a.send('POST', '/Users', [user('arr@bad.test')]), 400, ['invalidSyntax', 'invalidValue']);
      expectError(await a.send('POST', '/Users', 'alice'), 400, ['invalidSyntax', 'invalidValue']);
    });
  });
});

describe('schemas (RFC 7643 §3: "schemas" is REQUIRED; RFC 7644 §3.5.2 PatchOp)', () => {
  it('a create without schemas, with the wrong core schema, or with schemas not a list is 400', async () => {
    await unchanged(async () => {
      expectError(await a.send('POST', '/Users', { userName: 'noschemas@bad.test' }), 400, ['invalidSyntax', 'invalidValue']);
      expectError(await a.send('POST', '/Users', { schemas: [GROUP_SCHEMA], userName: 'wrong@bad.test' }), 400, ['invalidSyntax', 'invalidValue']);
      expectError(await a.send('POST', '/Users', { schemas: USER_SCHEMA, userName: 'str@bad.test' }), 400, ['invalidSyntax', 'invalidValue']);
      expectError(await a.send('POST', '/Groups', { schemas: [USER_SCHEMA], displayName: 'Wrong' }), 400, ['invalidSyntax', 'invalidValue']);
      expectError(await a.send('PUT', `/Users/${ids.alice}`, { userName: 'alice@bad.test', displayName: 'No schemas' }), 400, ['invalidSyntax', 'invalidValue']);
    });
  });

  const patchCases: [string, Record<string, unknown>, string[]][] = [
    ['without the PatchOp schema', { Operations: [{ op: 'replace', path: 'displayName', value: 'X' }] }, ['invalidSyntax', 'invalidValue']],
    ['with the User schema instead of PatchOp', { schemas: [USER_SCHEMA], Operations: [{ op: 'replace', path: 'displayName', value: 'X' }] }, ['invalidSyntax', 'invalidValue']],
    ['without Operations', { schemas: [PATCH_OP] }, ['invalidSyntax', 'invalidValue']],
    ['with an unknown op', { schemas: [PATCH_OP], Operations: [{ op: 'frobnicate', path: 'displayName', value: 'X' }] }, ['invalidSyntax', 'invalidValue']],
    // RFC 7644 §3.5.2.2: "If "path" is unspecified, the operation fails with HTTP status code 400 and a "scimType" error code of "noTarget"."
    ['remove without path (RFC 7644 §3.5.2.2: noTarget)', { schemas: [PATCH_OP], Operations: [{ op: 'remove' }] }, ['noTarget']],
    // RFC 7644 §3.5.2.3: a replace whose valuePath filter matches no value is 400 noTarget.
    ['replace through a valuePath that matches nothing (RFC 7644 §3.5.2.3: noTarget)', { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'emails[type eq "home"].value', value: 'h@bad.test' }] }, ['noTarget']],
    // RFC 7644 §3.12 invalidPath: "The "path" attribute was invalid or malformed (see Figure 7)."
    ['a path that does not parse (RFC 7644 §3.12: invalidPath)', { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'emails[type eq "work"', value: 'x' }] }, ['invalidPath', 'invalidFilter']],
  ];
  it.each(patchCases)('a PATCH %s is 400 and changes nothing', async (_what, body, scimTypes) => {
    await unchanged(async () => expectError(await a.send('PATCH', `/Users/${ids.alice}`, body), 400, scimTypes));
  });
});

describe('attribute types (RFC 7643 §2.3, RFC 7644 §3.12 invalidValue)', () => {
  it.each([
    ['userName a number', user('x', { userName: 5 })],
    ['userName null (a required value missing)', user('x', { userName: null })],
    ['userName missing', { schemas: [USER_SCHEMA], displayName: 'Nobody' }],
    ['active "maybe"', user('maybe@bad.test', { active: 'maybe' })],
    ['active a number', user('num@bad.test', { active: 1 })],
    ['name a string', user('namestr@bad.test', { name: 'Just A String' })],
  ])('a create with %s is 400 invalidValue and creates nothing', async (_what, body) => {
    await unchanged(async () => expectError(await a.send('POST', '/Users', body), 400, 'invalidValue'));
  });

  it('a PUT or PATCH with a wrong type is 400 and the whole PATCH is undone (RFC 7644 §3.5.2: atomic)', async () => {
    await unchanged(async () => {
      expectError(await a.send('PUT', `/Users/${ids.alice}`, user('alice@bad.test', { active: 'maybe' })), 400, 'invalidValue');
      expectError(
        await a.send('PATCH', `/Users/${ids.alice}`, {
          schemas: [PATCH_OP],
          Operations: [
            { op: 'replace', path: 'displayName', value: 'Changed By A Failed Patch' },
            { op: 'replace', path: 'active', value: 'maybe' },
          ],
        }),
        400,
        'invalidValue',
      );
      expectError(await a.send('PATCH', `/Users/${ids.alice}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'userName', value: 42 }] }), 400, 'invalidValue');
      expectError(await a.send('PATCH', `/Groups/${ids.eng}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: { nested: true } }] }), 400, 'invalidValue');
    });
  });

  it('string booleans "True"/"False" (as Entra sends them) are taken as booleans', async () => {
    const created = await a.send('POST', '/Users', user('entra@bad.test'));
    expect(created.statusCode).toBe(201);
    const id = json(created).id as string;
    const off = await a.send('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', value: { active: 'False' } }] });
    expect([200, 204]).toContain(off.statusCode);
    expect(json(await a.send('GET', `/Users/${id}`)).active).toBe(false);
    const on = await a.send('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'active', value: 'True' }] });
    expect([200, 204]).toContain(on.statusCode);
    expect(json(await a.send('GET', `/Users/${id}`)).active).toBe(true);
    expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
  });
});

describe('unknown attributes are kept, not an error (SPEC Identity: "nothing the IdP sends is lost")', () => {
  it('top-level unknown attributes, a custom schema extension and the enterprise extension come back as sent', async () => {
    const body = user('unknown@bad.test', {
      schemas: [USER_SCHEMA, ENTERPRISE, ACME],
      favouriteColour: 'teal',
      nestedThing: { list: [1, { deep: true }], text: 'ü "quoted" \\ back' },
      [ENTERPRISE]: { employeeNumber: '0042', department: 'R&D', manager: { value: ids.alice } },
      [ACME]: { badge: 'B-7', level: 3, tags: ['x', 'y'] },
      password: 'hunter2',
    });
    const res = await a.send('POST', '/Users', body);
    expect(res.statusCode).toBe(201);
    const id = json(res).id as string;
    const got = json(await a.send('GET', `/Users/${id}`));
    expect(got).toMatchObject({
      userName: 'unknown@bad.test',
      favouriteColour: 'teal',
      nestedThing: { list: [1, { deep: true }], text: 'ü "quoted" \\ back' },
      [ENTERPRISE]: { employeeNumber: '0042', department: 'R&D', manager: { value: ids.alice } },
      [ACME]: { badge: 'B-7', level: 3, tags: ['x', 'y'] },
    });
    expect(got.schemas).toEqual(expect.arrayContaining([USER_SCHEMA, ENTERPRISE]));
    // RFC 7643 §4.1.1: password is "returned": "never".
    expect(JSON.stringify(got)).not.toContain('hunter2');
    expect(got).not.toHaveProperty('password');
    expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
  });
});

describe('values Postgres cannot store (SPEC Safety: per-record isolation; never 5xx)', () => {
  it('a NUL character in userName or an attribute is refused with 400, or kept and skipped by the run with a warning', async () => {
    for (const body of [
      user('nul\u0000@bad.test'),
      user('nulattr@bad.test', { displayName: 'a\u0000b' }),
      user('nulkey@bad.test', { ['we\u0000ird']: 'x' }),
    ]) {
      const before = await snapshot(a);
      const res = await a.send('POST', '/Users', body);
      expect([201, 400], res.body).toContain(res.statusCode);
      if (res.statusCode === 400) {
        expectError(res, 400, ['invalidValue', 'invalidSyntax']);
        expect(await snapshot(a)).toEqual(before);
        continue;
      }
      // Accepted: stored exactly as sent, and a run skips it with a warning, applying everything else.
      const id = json(res).id as string;
      const got = json(await a.send('GET', `/Users/${id}`));
      expect(got).toMatchObject(Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'schemas')));
      let run = await runNow({ db, config }, A.integrationId);
      if (run.status === 'held') run = await approveNow({ db, config }, run.id);
      expect(run.status).toBe('succeeded');
      expect(run.warnings.map((w) => w.externalId)).toContain(id);
      const tenant = await new DirectoryRepository(db).listTenantUsers(A.tenantId);
      expect(tenant.map((u) => u.userName)).toEqual(expect.arrayContaining(['alice@bad.test', 'bob@bad.test']));
      expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
    }
  });
});

describe('filters (RFC 7644 §3.4.2.2; the string is a JSON string, Figure 1)', () => {
  const list = (c: ScimClient, filter: string, extra = '') => c.send('GET', `/Users?filter=${encodeURIComponent(filter)}${extra}`);

  it('an escaped quote stays inside the string: `userName eq "x\\" or 1=1 --"` matches only that exact login', async () => {
    const none = await list(a, 'userName eq "x\\" or 1=1 --"');
    expect(none.statusCode, none.body).toBe(200);
    expect(json(none).totalResults).toBe(0);
    const created = await a.send('POST', '/Users', user('x" or 1=1 --'));
    expect(created.statusCode).toBe(201);
    const id = json(created).id as string;
    const one = await list(a, 'userName eq "x\\" or 1=1 --"');
    expect(one.statusCode).toBe(200);
    expect(json(one).totalResults).toBe(1);
    expect(((json(one).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id)).toEqual([id]);
    expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
  });

  it.each([`userName eq "x' OR '1'='1"`, `userName eq "'; drop table users; --"`, `userName eq "%"`, `userName eq "_"`, `userName eq "\\\\"`, `userName eq "CORP\\\\alice"`])(
    'SQL or escapes in a string are only a string: %s is 200 and matches nothing',
    async (f) => {
      const res = await list(a, f);
      expect(res.statusCode, `${f}: ${res.body}`).toBe(200);
      expect(json(res).totalResults, f).toBe(0);
    },
  );

  it('a login with a backslash (CORP\\alice, as AD-sourced logins are) is found by its filter (RFC 7644 Figure 1: a JSON string)', async () => {
    const created = await a.send('POST', '/Users', user('CORP\\alice'));
    expect(created.statusCode).toBe(201);
    const id = json(created).id as string;
    const res = await list(a, `userName eq ${JSON.stringify('corp\\ALICE')}`);
    const found = res.statusCode === 200 ? ((json(res).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id) : res.body;
    expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
    expect(found).toEqual([id]);
  });

  it.each([
    ['an unbalanced quote', 'userName eq "alice@bad.test'],
    ['an unknown operator', 'userName xx "alice@bad.test"'],
    ['a missing value', 'userName eq'],
    ['a stray parenthesis', 'userName eq "x") or (1=1'],
    ['a dangling and', 'userName eq "alice@bad.test" and'],
    ['SQL outside a string', `userName eq "x"; drop table users`],
    ['an unclosed bracket', 'emails[type eq "work"'],
  ])('%s is 400 invalidFilter', async (_what, filter) => {
    expectError(await list(a, filter), 400, 'invalidFilter');
  });

  it('a filter that does not parse is told back in the client\'s own words, not the parser\'s stand-ins for its strings', async () => {
    const res = await list(a, 'userName eq "alice@bad.test" ) or (');
    expectError(res, 400, 'invalidFilter');
    const detail = json(res).detail as string;
    expect(detail).toContain('alice@bad.test');
    expect(detail).not.toMatch(/s[0-9a-f]{16}_/);
  });

  // RFC 7644 §3.4.2.2 lists `emails co "example.com"` among its examples: a complex multi-valued
  // attribute compared without a sub-attribute compares each value's `value`.
  it.each([
    ['emails co "alice"', [':alice']],
    ['emails ew "@BAD.test"', [':alice']],
    ['emails eq "bob@bad.test"', []],
    ['userName ew "bad.test" and not (emails co "alice")', [':bob']],
  ])('%s compares the emails\' values', async (filter, want) => {
    const res = await list(a, filter);
    expect(res.statusCode, res.body).toBe(200);
    const got = ((json(res).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id);
    expect(got.sort()).toEqual(want.map((w) => ids[w.slice(1)]).sort());
  });

  // RFC 7644 Figure 1 makes a bare word invalid (compValue is a JSON literal), but does not forbid a
  // server from reading it: some clients send `userName eq alice` or single quotes (the
  // implementation reads them as strings on purpose, for authentik). Either answer is acceptable;
  // a wrong match or a JSON literal read as a string is not.
  it.each([
    ['userName eq alice@bad.test', [':alice']],
    ["userName eq 'ALICE@bad.test'", [':alice']],
    ['userName eq nobody@bad.test', []],
    ['active eq true', [':alice', ':bob']],
    ['active eq false', []],
  ])('%s is 400 invalidFilter or answered as the quoted form would be', async (filter, want) => {
    const res = await list(a, filter);
    if (res.statusCode === 400) return expectError(res, 400, 'invalidFilter', false);
    expect(res.statusCode, res.body).toBe(200);
    const got = ((json(res).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id);
    expect(got.sort()).toEqual(want.map((w) => ids[w.slice(1)]).sort());
  });

  it('valid filters the server may not support are answered right or refused with invalidFilter, never wrongly', async () => {
    const cases: [string, string[]][] = [
      ['userName eq "ALICE@bad.test" or userName eq "nobody@bad.test"', [ids.alice!]],
      ['(userName eq "bob@bad.test")', [ids.bob!]],
      ['userName sw "ali"', [ids.alice!]],
      ['emails[type eq "work" and value co "alice"]', [ids.alice!]],
      ['nosuchattribute eq "x"', []],
      ['userName eq "\u0000"', []],
    ];
    for (const [filter, want] of cases) {
      const res = await list(a, filter);
      if (res.statusCode === 400) {
        expectError(res, 400, 'invalidFilter', false);
        continue;
      }
      expect(res.statusCode, `${filter}: ${res.body}`).toBe(200);
      expect(((json(res).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id).sort(), filter).toEqual([...want].sort());
    }
  });

  it('a valuePath filter with an escaped quote in a PATCH removes only what it names', async () => {
    const before = await snapshot(a);
    const res = await a.send('PATCH', `/Groups/${ids.eng}`, { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: 'members[value eq "x\\" or 1=1 --"]' }] });
    // No member has that value: nothing to remove (2xx) or noTarget; never every member.
    if (res.statusCode >= 400) {
      expectError(res, 400, ['noTarget', 'invalidFilter', 'invalidPath'], false);
      expect(await snapshot(a)).toEqual(before);
    } else expect([200, 204]).toContain(res.statusCode);
    const members = ((json(await a.send('GET', `/Groups/${ids.eng}`)).members ?? []) as Record<string, unknown>[]).map((m) => m.value);
    expect(members.sort()).toEqual([ids.alice, ids.bob].sort());
  });
});

describe('paging (RFC 7644 §3.4.2.4)', () => {
  const total = async () => json(await a.send('GET', '/Users?count=1000')).totalResults as number;

  it('a negative count is taken as 0: only totalResults', async () => {
    const n = await total();
    const res = await a.send('GET', '/Users?count=-5');
    expect(res.statusCode, res.body).toBe(200);
    const body = json(res);
    expect(listProblems(body)).toEqual([]);
    expect(body.totalResults).toBe(n);
    expect((body.Resources ?? []) as unknown[]).toEqual([]);
  });

  it('a huge count returns every resource up to the advertised maxResults', async () => {
    const n = await total();
    const max = ((json(await a.send('GET', '/ServiceProviderConfig')).filter ?? {}) as Record<string, unknown>).maxResults as number;
    const res = await a.send('GET', '/Users?count=1000000000');
    expect(res.statusCode, res.body).toBe(200);
    const got = ((json(res).Resources ?? []) as unknown[]).length;
    expect(got).toBe(Math.min(n, max ?? n));
    expect(json(res).totalResults).toBe(n);
  });

  it('a startIndex below 1 is taken as 1; one past the end is an empty page', async () => {
    const n = await total();
    for (const s of ['0', '-3']) {
      const res = await a.send('GET', `/Users?startIndex=${s}&count=1000`);
      expect(res.statusCode, res.body).toBe(200);
      expect(json(res).startIndex).toBe(1);
      expect(((json(res).Resources ?? []) as unknown[]).length).toBe(n);
    }
    const past = await a.send('GET', `/Users?startIndex=${n + 5}&count=10`);
    expect(past.statusCode).toBe(200);
    expect(json(past).totalResults).toBe(n);
    expect((json(past).Resources ?? []) as unknown[]).toEqual([]);
  });

  it('nonsense numbers are answered 400 or taken as a default, never 5xx', async () => {
    for (const q of ['count=abc', 'count=99999999999999999999999', 'startIndex=1e400', 'count=1.5', 'startIndex=NaN', 'count=']) {
      const res = await a.send('GET', `/Users?${q}`);
      expect([200, 400], `${q}: ${res.body}`).toContain(res.statusCode);
      if (res.statusCode === 400) expectError(res, 400, undefined, false);
    }
  });
});

describe('other integrations and tokens', () => {
  it("another integration's resource ids are 404 here, for every method, and stay as they were", async () => {
    await unchanged(async () => {
      for (const [kind, id] of [['Users', ids.carol], ['Groups', ids.ops]] as const) {
        expectError(await a.send('GET', `/${kind}/${id}`), 404);
        expectError(await a.send('PUT', `/${kind}/${id}`, kind === 'Users' ? user('stolen@bad.test') : { schemas: [GROUP_SCHEMA], displayName: 'Stolen' }), 404);
        expectError(await a.send('PATCH', `/${kind}/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: 'Stolen' }] }), 404);
        expectError(await a.send('DELETE', `/${kind}/${id}`), 404);
      }
      // ... and they are not listed here either.
      const listed = await a.send('GET', `/Users?filter=${encodeURIComponent('userName eq "carol@other.test"')}`);
      expect(json(listed).totalResults).toBe(0);
    });
  });

  it("another integration's user never becomes a member here", async () => {
    const res = await a.send('PATCH', `/Groups/${ids.eng}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: ids.carol }] }] });
    if (res.statusCode >= 300) expectError(res, [400, 404], undefined, false);
    const members = ((json(await a.send('GET', `/Groups/${ids.eng}`)).members ?? []) as Record<string, unknown>[]).map((m) => m.value);
    expect(members.sort()).toEqual([ids.alice, ids.bob].sort());
  });

  it.each(['not-a-uuid', "1'; drop table users; --", '00000000-0000-0000-0000-000000000000', '%00', '\u0000'])('the id %j is 404, not a database error', async (id) => {
    expectError(await a.send('GET', `/Users/${encodeURIComponent(id)}`), 404);
    expectError(await a.send('GET', `/Groups/${encodeURIComponent(id)}`), 404);
    expectError(await a.send('DELETE', `/Users/${encodeURIComponent(id)}`), 404);
  });

  it('a 5000-character id is refused (404 or 414) with a SCIM error (RFC 7644 §3.12: "the server SHOULD return a SCIM error response")', async () => {
    const res = await a.send('GET', `/Users/${'a'.repeat(5000)}`);
    expectError(res, [404, 414], undefined, false);
  });

  it("the token of another integration, a wrong token, or none is 401", async () => {
    await unchanged(async () => {
      for (const authorization of [`Bearer ${B.token}`, 'Bearer nope', B.token, `Basic ${Buffer.from(`x:${A.token}`).toString('base64')}`, 'Bearer ', '']) {
        const headers = { authorization };
        for (const [method, path, body] of [
          ['GET', '/Users', undefined],
          ['GET', `/Users/${ids.alice}`, undefined],
          ['POST', '/Users', user('intruder@bad.test')],
          ['PATCH', `/Users/${ids.alice}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] }],
          ['DELETE', `/Users/${ids.bob}`, undefined],
        ] as const) {
          const res = await app.inject({
            method,
            url: `/scim/v2/${A.integrationId}${path}`,
            headers: { ...(authorization ? headers : {}), ...(body ? { 'content-type': 'application/scim+json' } : {}) },
            payload: body ? JSON.stringify(body) : undefined,
          });
          expect(res.statusCode, `${method} ${path} with authorization ${JSON.stringify(authorization.slice(0, 12))}: ${res.body}`).toBe(401);
        }
      }
    });
  });

  it('an integration id that is unknown or malformed is refused (401 or 404), never 5xx', async () => {
    for (const integration of ['00000000-0000-0000-0000-000000000000', 'not-an-id', B.integrationId]) {
      const res = await a.send('GET', '/Users', undefined, { base: `/scim/v2/${integration}` });
      expect([401, 404], res.body).toContain(res.statusCode);
    }
  });

  it('a disabled integration rejects every request (SPEC: 401 or 403), and again accepts once enabled', async () => {
    const D = await createScimIntegration(db, config);
    const d = new ScimClient(app, D.integrationId, D.token);
    const created = await d.send('POST', '/Users', user('dora@bad.test'));
    expect(created.statusCode).toBe(201);
    const id = json(created).id as string;
    const service = new IntegrationService(db, config);
    await service.setEnabled(D.integrationId, false);
    for (const [method, path, body] of [
      ['GET', '/ServiceProviderConfig', undefined],
      ['GET', '/Users', undefined],
      ['GET', `/Users/${id}`, undefined],
      ['POST', '/Users', user('dora2@bad.test')],
      ['PUT', `/Users/${id}`, user('dora@bad.test', { displayName: 'Changed' })],
      ['PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] }],
      ['DELETE', `/Users/${id}`, undefined],
      ['POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'G' }],
    ] as const) {
      const res = await d.send(method, path, body);
      expect([401, 403], `${method} ${path}: ${res.body}`).toContain(res.statusCode);
    }
    await service.setEnabled(D.integrationId, true);
    const got = await d.send('GET', `/Users/${id}`);
    expect(got.statusCode).toBe(200);
    expect(json(got)).toMatchObject({ userName: 'dora@bad.test', id });
    expect(json(got).displayName).toBeUndefined();
    expect(json(got).active === undefined || json(got).active === true).toBe(true);
  });
});

describe('record size limits (SPEC Safety: per-record isolation; README "Bad records")', () => {
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`attr${i}`, i]));

  it('a User or Group over 1,000 attributes or 64 KiB of JSON is 400 invalidValue naming the limit, for POST, PUT and PATCH, and stores nothing', async () => {
    await unchanged(async () => {
      const tooMany = await a.send('POST', '/Users', user('many@bad.test', { 'urn:example:custom': many(50_000) }));
      expectError(tooMany, 400, 'invalidValue');
      expect(json(tooMany).detail).toMatch(/^the User has 50,00\d attributes \(nested ones counted\); at most 1,000 are taken/);
      const tooBig = await a.send('POST', '/Users', user('big@bad.test', { displayName: 'x'.repeat(70_000) }));
      expectError(tooBig, 400, 'invalidValue');
      expect(json(tooBig).detail).toMatch(/^the User has 70,\d{3} bytes of attributes as JSON; at most 65,536 \(64 KiB\) are taken/);
      expectError(await a.send('PUT', `/Users/${ids.alice}`, user('alice@bad.test', { 'urn:example:custom': many(1_001) })), 400, 'invalidValue');
      expectError(
        await a.send('PATCH', `/Users/${ids.alice}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'urn:example:custom', value: many(2_000) }] }),
        400,
        'invalidValue',
      );
      expectError(await a.send('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Huge', description: 'y'.repeat(70_000) }), 400, 'invalidValue');
    });
  });

  it('a User just within the limits is taken', async () => {
    const res = await a.send('POST', '/Users', user('within@bad.test', { 'urn:example:custom': many(900) }));
    expect(res.statusCode, res.body.slice(0, 300)).toBe(201);
    expect((await a.send('DELETE', `/Users/${json(res).id as string}`)).statusCode).toBe(204);
  });
});

describe('transport', () => {
  it('an oversized body is 413 and stores nothing', async () => {
    await unchanged(async () => {
      const big = user('big@bad.test', { displayName: 'x'.repeat(12 * 1024 * 1024) });
      const res = await a.send('POST', '/Users', big);
      expectError(res, 413, undefined, false);
    });
  });

  it('application/json and application/scim+json (with or without charset) are both accepted', async () => {
    for (const [i, contentType] of ['application/json', 'application/scim+json', 'application/scim+json; charset=utf-8', 'application/json; charset=UTF-8'].entries()) {
      const res = await a.send('POST', '/Users', user(`ct${i}@bad.test`), { contentType });
      expect(res.statusCode, `${contentType}: ${res.body}`).toBe(201);
      const id = json(res).id as string;
      const patched = await a.send('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: `CT ${i}` }] }, { contentType });
      expect([200, 204], `${contentType}: ${patched.body}`).toContain(patched.statusCode);
      expect(json(await a.send('GET', `/Users/${id}`)).displayName).toBe(`CT ${i}`);
      expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
    }
  });

  it('another content type is refused (4xx), never 5xx, and stores nothing', async () => {
    await unchanged(async () => {
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
        const res = await a.send('POST', '/Users', undefined, { raw: JSON.stringify(user('ctbad@bad.test')), contentType });
        if (res.statusCode < 300) {
          // A lenient server may parse it; then it must be a proper create. Undo it.
          expect(res.statusCode).toBe(201);
          expect((await a.send('DELETE', `/Users/${json(res).id as string}`)).statusCode).toBe(204);
        } else expect(res.statusCode).toBeLessThan(500);
      }
    });
  });
});

describe('odd but valid input', () => {
  it('attribute names and filter operators are case-insensitive (RFC 7643 §2.1; RFC 7644 §3.4.2.2)', async () => {
    const res = await a.send('GET', `/Users?filter=${encodeURIComponent('USERNAME EQ "ALICE@BAD.TEST"')}`);
    expect(res.statusCode, res.body).toBe(200);
    expect(((json(res).Resources ?? []) as Record<string, unknown>[]).map((r) => r.id)).toEqual([ids.alice]);
    const patched = await a.send('PATCH', `/Users/${ids.bob}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'DISPLAYNAME', value: 'Bob' }] });
    expect([200, 204], patched.body).toContain(patched.statusCode);
    expect(json(await a.send('GET', `/Users/${ids.bob}`)).displayName).toBe('Bob');
  });

  it('read-only attributes a client sends are ignored: a chosen id, meta, and groups (RFC 7643 §3.1, §4.1.2)', async () => {
    const res = await a.send('POST', '/Users', user('readonly@bad.test', { id: 'client-chosen', meta: { resourceType: 'Group' }, groups: [{ value: ids.eng }] }));
    expect(res.statusCode, res.body).toBe(201);
    const body = json(res);
    expect(body.id).not.toBe('client-chosen');
    expect((body.meta as Record<string, unknown>).resourceType).toBe('User');
    const members = ((json(await a.send('GET', `/Groups/${ids.eng}`)).members ?? []) as Record<string, unknown>[]).map((m) => m.value);
    expect(members).not.toContain(body.id);
    expect((await a.send('DELETE', `/Users/${body.id as string}`)).statusCode).toBe(204);
  });

  it('a group member that names no user is refused or dropped, and a run still succeeds (SPEC: per-record isolation)', async () => {
    const res = await a.send('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ghosts', members: [{ value: '00000000-0000-0000-0000-000000000001' }, { value: 'not-a-uuid' }, { value: ids.alice }] });
    let gid: string | undefined;
    if (res.statusCode === 201) {
      gid = json(res).id as string;
    } else expectError(res, [400, 404], undefined, false);
    let run = await runNow({ db, config }, A.integrationId);
    if (run.status === 'held') run = await approveNow({ db, config }, run.id);
    expect(run.status, JSON.stringify(run)).toBe('succeeded');
    if (gid) {
      const tenant = await new DirectoryRepository(db).listTenantGroups(A.tenantId);
      expect(tenant.find((g) => g.name === 'Ghosts')?.members).toEqual(['alice@bad.test']);
      expect((await a.send('DELETE', `/Groups/${gid}`)).statusCode).toBe(204);
    }
  });
});

describe('concurrent pushes', () => {
  it('of one login in different cases create exactly one user; the rest are 409 uniqueness (RFC 7644 §3.3)', async () => {
    const names = ['Race@bad.test', 'race@bad.test', 'RACE@bad.test', 'rAce@BAD.test', 'racE@bad.TEST', 'race@Bad.test'];
    const results = await Promise.all(names.map((n) => a.send('POST', '/Users', user(n))));
    const created = results.filter((r) => r.statusCode === 201);
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.statusCode === 409)) expectError(r, 409, 'uniqueness');
    const listed = await a.send('GET', `/Users?filter=${encodeURIComponent('userName eq "race@bad.test"')}`);
    expect(json(listed).totalResults).toBe(1);
    for (const r of created) expect((await a.send('DELETE', `/Users/${json(r).id as string}`)).statusCode).toBe(204);
  });

  it('that each add a member to one group all take effect (no lost update)', async () => {
    const made = await Promise.all(Array.from({ length: 8 }, (_, i) => a.send('POST', '/Users', user(`member${i}@bad.test`))));
    const memberIds = made.map((r) => json(r).id as string);
    const g = json(await a.send('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Crowd' })).id as string;
    const patches = await Promise.all(memberIds.map((id) => a.send('PATCH', `/Groups/${g}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] })));
    expect(patches.map((p) => p.statusCode).every((s) => s === 200 || s === 204), patches.map((p) => `${p.statusCode} ${p.body.slice(0, 100)}`).join('\n')).toBe(true);
    const members = ((json(await a.send('GET', `/Groups/${g}`)).members ?? []) as Record<string, unknown>[]).map((m) => m.value);
    expect([...members].sort()).toEqual([...memberIds].sort());
    expect((await a.send('DELETE', `/Groups/${g}`)).statusCode).toBe(204);
    for (const id of memberIds) expect((await a.send('DELETE', `/Users/${id}`)).statusCode).toBe(204);
  });
});

describe('a login another integration of the tenant owns (SPEC Identity, Safety)', () => {
  it('is accepted by this SCIM endpoint, skipped by its run with a warning while the owner is enabled, and adopted once the owner is disabled', async () => {
    const service = new IntegrationService(db, config);
    const first = await createScimIntegration(db, config);
    const second = await createScimIntegration(db, config, { tenantSlug: first.tenantSlug });
    const c1 = new ScimClient(app, first.integrationId, first.token);
    const c2 = new ScimClient(app, second.integrationId, second.token);
    const owned = await c1.send('POST', '/Users', user('Shared@conflict.test', { displayName: 'From first' }));
    expect(owned.statusCode).toBe(201);
    const other = await c1.send('POST', '/Users', user('only-first@conflict.test'));
    expect(other.statusCode).toBe(201);
    expect((await runNow({ db, config }, first.integrationId)).status).toBe('succeeded');
    // RFC 7643 §2.2 "server" uniqueness is within one SCIM endpoint: the second endpoint takes the login.
    const pushed = await c2.send('POST', '/Users', user('shared@CONFLICT.test', { displayName: 'From second' }));
    expect(pushed.statusCode, pushed.body).toBe(201);
    const pushedId = json(pushed).id as string;
    const fresh = await c2.send('POST', '/Users', user('only-second@conflict.test'));
    expect(fresh.statusCode).toBe(201);
    let run = await runNow({ db, config }, second.integrationId);
    if (run.status === 'held') run = await approveNow({ db, config }, run.id);
    expect(run.status, JSON.stringify(run)).toBe('succeeded');
    expect(run.warnings.map((w) => w.externalId)).toEqual([pushedId]);
    const repo = new DirectoryRepository(db);
    let users = await repo.listTenantUsers(first.tenantId);
    expect(users.map((u) => [u.userName, u.displayName, u.active]).sort()).toEqual([
      ['Shared@conflict.test', 'From first', true],
      ['only-first@conflict.test', null, true],
      ['only-second@conflict.test', null, true],
    ]);
    // SPEC Adoption: an account no enabled integration owns is adopted by the one that provisions it, never duplicated.
    await service.setEnabled(first.integrationId, false);
    run = await runNow({ db, config }, second.integrationId);
    if (run.status === 'held') run = await approveNow({ db, config }, run.id);
    expect(run.status, JSON.stringify(run)).toBe('succeeded');
    expect(run.warnings).toEqual([]);
    users = await repo.listTenantUsers(first.tenantId);
    const shared = users.filter((u) => u.userName.toLowerCase() === 'shared@conflict.test');
    expect(shared.map((u) => [u.userName, u.displayName, u.active, u.locked])).toEqual([['shared@CONFLICT.test', 'From second', true, false]]);
  });
});

describe('a push asks for a run (SPEC Run: "Triggered by ... a SCIM push")', () => {
  it('an accepted write leaves a queued run triggered by scim', async () => {
    const fresh = await createScimIntegration(db, config);
    const c = new ScimClient(app, fresh.integrationId, fresh.token);
    expect((await c.send('POST', '/Users', user('trigger@bad.test'))).statusCode).toBe(201);
    const runs = await new RunRepository(db).listForIntegration(fresh.integrationId, 10);
    expect(runs.filter((r) => r.trigger === 'scim' && r.status === 'queued').length, JSON.stringify(runs)).toBeGreaterThanOrEqual(1);
  });
});

describe('after all of it', () => {
  it('a run converges the tenant to exactly the users and groups that were accepted', async () => {
    let run = await runNow({ db, config }, A.integrationId);
    if (run.status === 'held') run = await approveNow({ db, config }, run.id);
    expect(run.status).toBe('succeeded');
    const repo = new DirectoryRepository(db);
    const users = (await repo.listTenantUsers(A.tenantId)).filter((u) => u.active);
    expect(users.map((u) => u.userName).sort()).toEqual(['alice@bad.test', 'bob@bad.test']);
    const alice = users.find((u) => u.userName === 'alice@bad.test')!;
    expect(alice).toMatchObject({ email: 'alice@bad.test', givenName: 'Alice', familyName: 'Liddell', displayName: 'Alice L', active: true, locked: false, groups: ['Eng'] });
    const groups = await repo.listTenantGroups(A.tenantId);
    expect(groups.map((g) => ({ name: g.name, members: [...g.members].sort() }))).toEqual([{ name: 'Eng', members: ['alice@bad.test', 'bob@bad.test'] }]);
    // Nothing crossed over from integration B's tenant.
    expect((await repo.listTenantUsers(A.tenantId)).some((u) => u.userName === 'carol@other.test')).toBe(false);
  });
});
