import type { Command } from 'commander';
import { TenantRepository } from '../db/tenant.repository.js';
import { TenantService } from '../tenants/tenant.service.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';
import { audited } from './audited.js';

export function registerTenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('create and list tenants');

  tenant
    .command('create <slug>')
    .description('create a tenant')
    .option('--name <name>', 'display name (default: the slug)')
    .addOption(jsonOption())
    .action((slug: string, opts: { name?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const created = await audited(ctx, 'tenant.create', { type: 'tenant', id: slug, tenantId: null }, () => new TenantService(ctx.db).create(slug, opts.name), {
          created: (t) => ({ tenantId: t.id }),
        });
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
