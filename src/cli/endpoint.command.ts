import type { Command } from 'commander';
import { EndpointService, type EndpointView } from '../events/endpoint.service.js';
import { emit, jsonOption, parseLimit, table } from './output.js';
import { withContext } from './run-command.js';
import { audited } from './audited.js';

/** `dirsync endpoint ...`: the host app's event endpoints and their deliveries (SPEC). */
export function registerEndpointCommands(program: Command): void {
  const endpoint = program.command('endpoint').description("the host app's event endpoints: signed webhook deliveries of every event");

  endpoint
    .command('create')
    .description('register an endpoint; prints its signing secret once. It receives the events committed from now on')
    .requiredOption('--url <url>', 'where to POST events (https; http only with DIRSYNC_ALLOW_HTTP=true)')
    .option('--tenant <slug>', "only this tenant's events (default: every tenant)")
    .option('--types <types>', 'only these event types, comma-separated (default: all)')
    .addOption(jsonOption())
    .action((opts: { url: string; tenant?: string; types?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const created = await audited(ctx, 'endpoint.create', { type: 'endpoint' }, () => new EndpointService(ctx.db, ctx.config).create(opts), {
          detail: { ...(opts.tenant !== undefined && { tenant: opts.tenant }), ...(opts.types !== undefined && { types: opts.types }) },
          created: (e) => ({ id: e.id }),
        });
        emit(opts.json, created, () =>
          [
            `created endpoint ${created.id} (${created.url}, ${created.tenant ? `tenant ${created.tenant}` : 'every tenant'}, ${created.types ? created.types.join(', ') : 'every event type'})`,
            `signing secret: ${created.secret}`,
            '(the secret is shown only now; verify deliveries with a Standard Webhooks library, and rotate it with `dirsync endpoint rotate-secret`)',
          ].join('\n'),
        );
      }),
    );

  endpoint
    .command('list')
    .description('every endpoint')
    .addOption(jsonOption())
    .action((opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const all = await new EndpointService(ctx.db, ctx.config).list();
        emit(opts.json, all, () =>
          table(
            ['id', 'url', 'tenant', 'types', 'enabled', 'delivered through'],
            all.map((e) => [e.id, e.url, e.tenant ?? '(every)', e.types?.join(',') ?? '(all)', e.enabled ? 'yes' : `no: ${e.disabledReason ?? ''}`, e.cursor]),
          ),
        );
      }),
    );

  endpoint
    .command('show <id>')
    .description('one endpoint')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const shown = await new EndpointService(ctx.db, ctx.config).show(id);
        emit(opts.json, shown, () => describe(shown));
      }),
    );

  endpoint
    .command('delete <id>')
    .description('remove an endpoint and its delivery history')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const deleted = await audited(ctx, 'endpoint.delete', { type: 'endpoint', id }, () => new EndpointService(ctx.db, ctx.config).delete(id));
        emit(opts.json, deleted, () => `deleted endpoint ${id}`);
      }),
    );

  endpoint
    .command('rotate-secret <id>')
    .description('issue a new signing secret; during the grace period deliveries carry signatures by both')
    .option('--grace <duration>', 'how long the old secret also signs, such as 15m, 1h or 7d (at most 30d); 0 stops it at once (default: DIRSYNC_WEBHOOK_SECRET_GRACE, or 24h)')
    .addOption(jsonOption())
    .action((id: string, opts: { grace?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const rotated = await audited(ctx, 'endpoint.rotate-secret', { type: 'endpoint', id }, () => new EndpointService(ctx.db, ctx.config).rotateSecret(id, opts.grace));
        emit(opts.json, rotated, () =>
          [
            rotated.previousSecretValidUntil ? `the old secret also signs until ${rotated.previousSecretValidUntil}` : 'the old secret no longer signs',
            `new signing secret for ${id}: ${rotated.secret}`,
          ].join('\n'),
        );
      }),
    );

  endpoint
    .command('deliveries <id>')
    .description('recent deliveries, newest first: attempts, last status, next attempt')
    .option('--limit <n>', 'how many, 1 to 1000 (default 50)', parseLimit)
    .addOption(jsonOption())
    .action((id: string, opts: { limit?: number; json?: boolean }) =>
      withContext(async (ctx) => {
        const service = new EndpointService(ctx.db, ctx.config);
        const [shown, deliveries] = [await service.show(id), await service.deliveries(id, opts.limit ?? 50)];
        emit(opts.json, { endpoint: shown, deliveries }, () =>
          [
            describe(shown),
            table(
              ['event', 'type', 'status', 'attempts', 'last status', 'last error', 'next attempt', 'at'],
              deliveries.map((d) => [d.cursor, d.type, d.status, d.attempts, d.lastStatusCode, d.lastError, d.nextAttemptAt, d.updatedAt]),
            ),
          ].join('\n'),
        );
      }),
    );

  endpoint
    .command('replay <id>')
    .description('send again every event after a cursor (and enable the endpoint if it was disabled)')
    .requiredOption('--after <cursor>', 'the cursor to replay after (an event\'s "cursor"; 0.0 replays everything)')
    .addOption(jsonOption())
    .action((id: string, opts: { after: string; json?: boolean }) =>
      withContext(async (ctx) => {
        // The worker's delivery trigger picks the endpoint up within seconds.
        const moved = await audited(ctx, 'endpoint.replay', { type: 'endpoint', id }, () => new EndpointService(ctx.db, ctx.config).replay(id, opts.after), { detail: { after: opts.after } });
        emit(opts.json, moved, () => `endpoint ${id} will be sent every event after ${moved.cursor}`);
      }),
    );
}

function describe(e: EndpointView): string {
  return [
    `endpoint ${e.id}`,
    `  url:        ${e.url}`,
    `  tenant:     ${e.tenant ?? '(every tenant)'}`,
    `  types:      ${e.types?.join(', ') ?? '(every type)'}`,
    `  enabled:    ${e.enabled ? 'yes' : `no (${e.disabledReason ?? ''})`}`,
    `  delivered:  through ${e.cursor}`,
    ...(e.failingSince ? [`  failing:    since ${e.failingSince}`] : []),
    ...(e.previousSecretValidUntil ? [`  old secret: also signs until ${e.previousSecretValidUntil}`] : []),
  ].join('\n');
}
