import type { Command } from 'commander';
import { TenantRepository } from '../db/tenant.repository.js';
import { UserError } from '../errors.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function registerTenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('create and list tenants');

  tenant
    .command('create <slug>')
    .description('create a tenant')
    .option('--name <name>', 'display name (default: the slug)')
    .addOption(jsonOption())
    .action((slug: string, opts: { name?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        if (!SLUG.test(slug)) {
          throw new UserError(`tenant slug "${slug}" is not valid: use lowercase letters, digits and dashes, such as acme-corp`);
        }
        const name = opts.name?.trim() || slug;
        const created = await new TenantRepository(ctx.db).create(slug, name);
        if (!created) throw new UserError(`tenant "${slug}" already exists`);
        emit(opts.json, created, () => `created tenant ${created.slug} (${created.id})`);
      }),
    );

  tenant
    .command('list')
    .description('list tenants')
    .addOption(jsonOption())
    .action((opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const tenants = await new TenantRepository(ctx.db).list();
        emit(opts.json, tenants, () => table(['slug', 'name', 'id'], tenants.map((t) => [t.slug, t.name, t.id])));
      }),
    );
}
