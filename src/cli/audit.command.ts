import type { Command } from 'commander';
import { parseSince } from '../access/since.js';
import { AuditRepository } from '../db/audit.repository.js';
import { emit, jsonOption, parseLimit, table } from './output.js';
import { withContext } from './run-command.js';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('admin actions, newest first: who, what, target, when, from where, outcome')
    .option('--since <duration>', 'how far back, such as 30m, 24h or 7d', '24h')
    .option('--limit <n>', 'at most this many', '200')
    .addOption(jsonOption())
    .action((opts: { since: string; limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const since = parseSince(opts.since);
        const limit = parseLimit(opts.limit);
        const rows = await new AuditRepository(ctx.db).list({ since, limit });
        emit(opts.json, rows, () =>
          table(
            ['at', 'actor', 'role', 'action', 'target', 'tenant', 'source', 'outcome'],
            rows.map((r) => [
              r.at,
              r.actor,
              r.role,
              r.action,
              r.target ? `${r.target.type} ${r.target.id ?? ''}`.trim() : null,
              r.tenant,
              r.source,
              r.reason ? `${r.outcome}: ${r.reason}` : r.outcome,
            ]),
          ),
        );
      }),
    );
}
