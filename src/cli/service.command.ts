import type { Command } from 'commander';
import { ensureDatabase, migrateToLatest } from '../db/database.js';
import { withContext } from './run-command.js';

// The server and worker pull in fastify, bull-board and the IdP SDKs (seconds of start-up),
// so only the commands that run them load them.
const serve = async (parts: { http: boolean; worker: boolean }) => (await import('./serve.js')).serve(parts);

export function registerServiceCommands(program: Command): void {
  program
    .command('migrate')
    .description('create the database if needed and apply migrations (safe to repeat)')
    .action(() =>
      withContext(async (ctx) => {
        const created = await ensureDatabase(ctx.config.databaseUrl);
        const { error, results } = await migrateToLatest(ctx.db);
        if (error) throw error;
        const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
        process.stdout.write(
          `${created ? 'created the database; ' : ''}${applied.length ? `applied ${applied.join(', ')}` : 'database is up to date'}\n`,
        );
      }),
    );

  program.command('start').description('HTTP server and worker in one process').action(() => serve({ http: true, worker: true }));
  program.command('worker').description('process runs from the queue').action(() => serve({ http: false, worker: true }));
  program.command('server').description('HTTP server only').action(() => serve({ http: true, worker: false }));
}
