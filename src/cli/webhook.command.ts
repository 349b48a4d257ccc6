import type { Command } from 'commander';
import { WebhookRepository } from '../db/webhook.repository.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { emit, jsonOption, parseLimit, table } from './output.js';
import { withContext } from './run-command.js';

export function registerWebhookCommands(program: Command): void {
  program
    .command('webhooks <integration-id>')
    .description('recent webhook deliveries of an integration, newest first, with the run each triggered; rejected ones with why')
    .option('--limit <n>', 'how many', '50')
    .addOption(jsonOption())
    .action((id: string, opts: { limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const limit = parseLimit(opts.limit);
        await new IntegrationService(ctx.db, ctx.config).get(id);
        const deliveries = await new WebhookRepository(ctx.db).listDeliveries(id, limit);
        emit(opts.json, deliveries, () =>
          table(
            ['receivedAt', 'source', 'outcome', 'events', 'run', 'detail'],
            deliveries.map((d) => [d.receivedAt, d.source, d.outcome, d.eventTypes.join(', '), d.runId, d.detail]),
          ),
        );
      }),
    );
}
