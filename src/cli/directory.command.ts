import type { Command } from 'commander';
import { DirectoryRepository } from '../db/directory.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError } from '../errors.js';
import type { CliContext } from './context.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';

async function tenantId(ctx: CliContext, slug: string): Promise<string> {
  const tenant = await new TenantRepository(ctx.db).findBySlug(slug);
  if (!tenant) throw new NotFoundError(`tenant "${slug}" does not exist: \`dirsync tenant list\` shows the tenants`);
  return tenant.id;
}

export function registerDirectoryCommands(program: Command): void {
  program
    .command('users')
    .description("a tenant's users, with their access, lock and groups")
    .requiredOption('--tenant <slug>', 'tenant slug')
    .addOption(jsonOption())
    .action((opts: { tenant: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const users = await new DirectoryRepository(ctx.db).listTenantUsers(await tenantId(ctx, opts.tenant));
        emit(opts.json, users, () =>
          table(
            ['userName', 'email', 'displayName', 'active', 'locked', 'groups'],
            users.map((u) => [u.userName, u.email, u.displayName, u.active, u.locked, u.groups.join(', ')]),
          ),
        );
      }),
    );

  program
    .command('groups')
    .description("a tenant's groups and their members")
    .requiredOption('--tenant <slug>', 'tenant slug')
    .addOption(jsonOption())
    .action((opts: { tenant: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const groups = await new DirectoryRepository(ctx.db).listTenantGroups(await tenantId(ctx, opts.tenant));
        emit(opts.json, groups, () => table(['name', 'members'], groups.map((g) => [g.name, g.members.join(', ')])));
      }),
    );
}
