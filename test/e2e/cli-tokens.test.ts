import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness } from '../support/cli.js';
import { DirsyncProcess } from '../support/processes.js';

// `dirsync token ...` and `dirsync audit` as SPEC gives them, from dist/: an admin issues a
// tenant-scoped token, the server honours and then refuses it, and the audit log shows who did what.
const cli = new CliHarness();
const ADMIN = 'e2e-admin-token-0123456789abcdef';
let server: DirsyncProcess;

beforeAll(async () => {
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'acme']);
  await cli.json(['tenant', 'create', 'globex']);
  server = await new DirsyncProcess(cli, 'start', { DIRSYNC_ADMIN_TOKEN: ADMIN }).start();
}, 90_000);
afterAll(async () => {
  await server?.stop();
  await cli.stop();
});

const api = (path: string, token: string) => fetch(`http://127.0.0.1:${cli.port}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });

describe('dirsync token and dirsync audit', () => {
  it('creates a token shown once, lists it without its text, revokes it, and audits all of it', async () => {
    const issued = await cli.json<{ id: string; name: string; role: string; tenant: string | null; token: string }>(['token', 'create', '--role', 'viewer', '--tenant', 'acme', '--name', 'acme-viewer']);
    expect(Object.keys(issued).sort()).toEqual(['id', 'name', 'role', 'tenant', 'token']);
    expect(issued).toMatchObject({ name: 'acme-viewer', role: 'viewer', tenant: 'acme' });
    expect(issued.token).toMatch(/^dst_[A-Za-z0-9_-]{43}$/);

    const text = await cli.run(['token', 'create', '--role', 'operator']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/created operator token operator \(.+\) for all tenants; it is shown only now\ntoken: dst_/);

    const listed = await cli.run(['token', 'list', '--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(issued.token);
    expect(JSON.parse(listed.stdout)).toContainEqual(expect.objectContaining({ id: issued.id, name: 'acme-viewer', role: 'viewer', tenant: 'acme', revokedAt: null }));

    // The server takes it: acme only.
    const tenants = await api('/tenants', issued.token);
    expect(tenants.status).toBe(200);
    expect(((await tenants.json()) as { items: { slug: string }[] }).items.map((t) => t.slug)).toEqual(['acme']);
    expect((await api('/tenants/globex/users', issued.token)).status).toBe(404);

    const revoked = await cli.run(['token', 'revoke', issued.id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked token acme-viewer (${issued.id})\n`);
    expect((await api('/tenants', issued.token)).status).toBe(401);

    const audit = await cli.json<{ actor: string; action: string; outcome: string; source: string; target: { type: string; id: string | null } | null; tenant: string | null }[]>(['audit', '--since', '1h']);
    const actor = audit.find((r) => r.action === 'token.revoke')!.actor;
    expect(actor).toMatch(/^cli:/);
    expect(audit).toContainEqual(expect.objectContaining({ action: 'token.create', outcome: 'ok', source: 'local', target: { type: 'token', id: issued.id } }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'token.revoke', outcome: 'ok', target: { type: 'token', id: issued.id } }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'tenant.create', outcome: 'ok', target: { type: 'tenant', id: 'acme' }, tenant: 'acme' }));
    expect(audit).toContainEqual(expect.objectContaining({ actor: 'token:acme-viewer', action: 'tenant.users', outcome: 'refused' }));
    expect(JSON.stringify(audit)).not.toContain('dst_');
    const table = await cli.run(['audit']);
    expect(table.stdout).toContain('token.revoke');
  });

  it('refuses bad input with one sentence', async () => {
    const role = await cli.run(['token', 'create', '--role', 'root']);
    expect(role.code).toBe(1);
    expect(role.stderr).toBe('dirsync: --role must be viewer, operator or admin, not "root".\n');
    const tenant = await cli.run(['token', 'create', '--role', 'viewer', '--tenant', 'nope']);
    expect(tenant.stderr).toBe('dirsync: tenant "nope" does not exist: `dirsync tenant list` shows the tenants.\n');
    const since = await cli.run(['audit', '--since', 'yesterday']);
    expect(since.code).toBe(1);
    expect(since.stderr).toBe('dirsync: --since "yesterday" is not a duration from 1m to 3650d: use a number and a unit, such as 30m, 24h or 7d.\n');
    const unknown = await cli.run(['token', 'revoke', '00000000-0000-4000-8000-000000000000']);
    expect(unknown.stderr).toBe('dirsync: token 00000000-0000-4000-8000-000000000000 does not exist: `dirsync token list` shows the tokens.\n');
  });

  it('deletes an integration only with --yes, and audits the refusal and the deletion', async () => {
    const created = await cli.json<{ id: string }>(['integration', 'create', '--tenant', 'acme', '--provider', 'scim']);
    const refused = await cli.run(['integration', 'delete', created.id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/run it again with --yes to confirm\.\n$/);
    expect((await cli.run(['integration', 'delete', created.id, '--yes'])).code).toBe(0);
    const audit = await cli.json<{ action: string; outcome: string; reason: string | null; target: { id: string } | null; tenant: string | null }[]>(['audit']);
    const rows = audit.filter((r) => r.action === 'integration.delete' && r.target?.id === created.id);
    expect(rows.map((r) => r.outcome)).toEqual(['ok', 'refused']);
    expect(rows[1]!.reason).toMatch(/--yes/);
    expect(rows[0]!.tenant).toBe('acme');
    expect(audit).toContainEqual(expect.objectContaining({ action: 'integration.create', outcome: 'ok', target: { type: 'integration', id: created.id } }));
  });
});
