import type { Command } from 'commander';
import { TokenService } from '../access/token.service.js';
import { audited, cliActor } from './audited.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('API tokens for the admin API and console: viewer, operator or admin, for one tenant or all');

  token
    .command('create')
    .description('issue a token (shown only now; stored hashed)')
    .requiredOption('--role <role>', 'viewer (reads), operator (also syncs, approves, tests connections) or admin (also manages tenants, integrations, credentials, endpoints and tokens)')
    .option('--tenant <slug>', 'confine the token to this tenant (others look absent to it)')
    .option('--name <name>', 'what the audit log calls it (default: the role and tenant)')
    .addOption(jsonOption())
    .action((opts: { role: string; tenant?: string; name?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const issued = await audited(
          ctx,
          'token.create',
          { type: 'token' },
          () => new TokenService(ctx.db).create({ role: opts.role, tenant: opts.tenant, name: opts.name, createdBy: cliActor() }),
          { detail: { role: opts.role, ...(opts.tenant !== undefined && { tenant: opts.tenant }), ...(opts.name !== undefined && { name: opts.name }) }, created: (t) => ({ id: t.id }) },
        );
        // The token goes last, so that scripts reading the text can take the end of it.
        emit(opts.json, issued, () =>
          [
            `created ${issued.role} token ${issued.name} (${issued.id}) for ${issued.tenant ? `tenant ${issued.tenant}` : 'all tenants'}; it is shown only now`,
            `token: ${issued.token}`,
          ].join('\n'),
        );
      }),
    );

  token
    .command('list')
    .description('list tokens, revoked ones too (never their text)')
    .addOption(jsonOption())
    .action((opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const tokens = await new TokenService(ctx.db).list();
        emit(opts.json, tokens, () =>
          table(
            ['id', 'name', 'role', 'tenant', 'created', 'revoked'],
            tokens.map((t) => [t.id, t.name, t.role, t.tenant ?? 'all', t.createdAt, t.revokedAt]),
          ),
        );
      }),
    );

  token
    .command('revoke <id>')
    .description('revoke a token: its API requests and console sessions are refused from now on')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const revoked = await audited(ctx, 'token.revoke', { type: 'token', id }, () => new TokenService(ctx.db).revoke(id));
        emit(opts.json, revoked, () => `revoked token ${revoked.name} (${revoked.id})`);
      }),
    );
}
