import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../errors.js';
import { type ConnectionReport, VerificationError, describeReport, failedCount } from '../integrations/connection-check.js';
import { type IntegrationOptions, IntegrationService } from '../integrations/integration.service.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';
import { RefusedError, audited } from './audited.js';

/** The schedule functions, loaded when a command changes a schedule: BullMQ is not loaded for every CLI start. */
const queueModule = () => import('../queue/queue.js');

interface OptionFlags extends Omit<IntegrationOptions, 'oktaPrivateKey'> {
  oktaPrivateKeyFile?: string;
  tokenFile?: string;
  json?: boolean;
}

/** The environment variable that gives an IdP token without putting it on the command line. */
export const IDP_TOKEN_ENV = 'DIRSYNC_IDP_TOKEN';

function addIntegrationOptions(command: Command): Command {
  return command
    .option('--base-url <url>', 'IdP address, such as https://example.okta.com or https://auth.example.com')
    .option('--token-file <path>', 'file holding the API token (Okta SSWS token, authentik API token); or set DIRSYNC_IDP_TOKEN')
    .option('--token <token>', 'API token; - reads it from stdin (a value given here shows in ps: prefer --token-file)')
    .option('--okta-client-id <id>', 'Okta OAuth service app: its client id (instead of --token)')
    .option('--okta-private-key-file <path>', "Okta OAuth service app: file with its private key (PEM or JWK, RSA)")
    .option('--okta-key-id <kid>', "Okta OAuth service app: the key id (kid) of the app's public key, when the key file has none")
    .option('--no-verify', 'store without first checking the IdP accepts these settings')
    .option('--okta-app-id <id>', 'scope to the users and groups assigned to this Okta app')
    .option('--authentik-app <slug>', 'scope to the users and groups bound to this authentik application')
    .option('--deprovision <mode>', 'what deprovisioning does: suspend (default), remove-access or delete')
    .option('--threshold <percent>', 'hold plans that deprovision more than this share of active users (default 20)')
    .option('--every <duration>', 'run on a schedule, such as 15m, 1h or 1d')
    .option('--cron <expr>', 'run on a cron schedule (UTC), such as "0 * * * *"')
    .option('--full-every <duration>', 'scheduled runs read what changed, and the whole scope this often (default 1d, at least 1h)')
    .option('--scim', 'okta, authentik: also take SCIM pushes, each read back through the API at once (prints a SCIM base URL and token)')
    .option('--no-scim', 'okta, authentik: stop taking SCIM pushes')
    .addOption(jsonOption());
}


/** A file's text, or a one-sentence UserError naming the option and why it cannot be read. */
function readOptionFile(option: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message;
    throw new UserError(`cannot read ${option} ${path}: ${why}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The IdP token from wherever it was given: `--token VALUE`, `--token -` (stdin), `--token-file
 * PATH` or DIRSYNC_IDP_TOKEN, all but the first kept out of `ps`. At most one may give it, and a
 * token never sits beside a service app's flags. Trailing line breaks (what `echo` and editors
 * add) are dropped; an empty token, or one of several lines, is refused.
 * `envToken` is undefined where the variable cannot apply (a scim integration).
 */
async function idpToken(flags: OptionFlags, envToken: string | undefined): Promise<string | undefined> {
  const given = [
    flags.token !== undefined ? (flags.token === '-' ? '--token -' : '--token') : undefined,
    flags.tokenFile !== undefined ? '--token-file' : undefined,
    envToken !== undefined ? IDP_TOKEN_ENV : undefined,
  ].filter((source): source is string => source !== undefined);
  if (given.length > 1) throw new UserError(`the IdP token is given ${given.length} ways (${given.join(', ')}): give it only once`);
  if (envToken !== undefined && (flags.oktaClientId !== undefined || flags.oktaPrivateKeyFile !== undefined || flags.oktaKeyId !== undefined)) {
    throw new UserError(`${IDP_TOKEN_ENV} gives a token and the --okta-* options a service app: unset ${IDP_TOKEN_ENV} to use the service app`);
  }
  const [source, text] =
    flags.token === '-'
      ? ['the token read from stdin (--token -)', await readStdin()]
      : flags.tokenFile !== undefined
        ? [`--token-file ${flags.tokenFile}`, readOptionFile('--token-file', flags.tokenFile)]
        : envToken !== undefined
          ? [IDP_TOKEN_ENV, envToken]
          : [undefined, flags.token];
  // --token VALUE goes to the service as it is, which refuses it when empty.
  if (source === undefined || text === undefined) return text;
  const token = text.replace(/[\r\n]+$/, '');
  if (token.trim() === '') throw new UserError(`${source} is empty: it must hold the IdP's API token`);
  if (/[\r\n]/.test(token)) throw new UserError(`${source} holds more than one line: it must hold only the IdP's API token`);
  return token;
}

/**
 * The service's options from the flags: files, stdin and DIRSYNC_IDP_TOKEN read here, so the
 * service never touches paths or the environment. `tokenFromEnv` is false where the variable
 * cannot apply (a scim integration), so that it is ignored there instead of refused.
 */
async function integrationOptions({ oktaPrivateKeyFile, tokenFile, json: _json, ...rest }: OptionFlags, tokenFromEnv = true): Promise<IntegrationOptions> {
  const token = await idpToken({ ...rest, tokenFile, oktaPrivateKeyFile }, tokenFromEnv ? process.env[IDP_TOKEN_ENV] : undefined);
  const options: IntegrationOptions = { ...rest, token };
  if (oktaPrivateKeyFile !== undefined) options.oktaPrivateKey = readOptionFile('--okta-private-key-file', oktaPrivateKeyFile);
  return options;
}

/** Shows why a check refused the settings (stdout with --json), then lets the error end the command. */
async function showingFailedCheck<T>(json: boolean | undefined, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof VerificationError) {
      if (json) process.stdout.write(`${JSON.stringify({ check: error.report }, null, 2)}\n`);
      else process.stderr.write(`${describeReport(error.report)}\n`);
    }
    throw error;
  }
}

/** What the check found, for create and update; notes (an endpoint not tried, nothing visible) in full. */
function checkedLine(check: ConnectionReport | null): string {
  if (!check) return 'not checked against the IdP (--no-verify)';
  const line = `checked ${check.checks.length} IdP endpoints: all ok`;
  return check.checks.some((c) => c.ok && c.note) ? `${line}, with notes:\n${describeReport(check)}` : line;
}

/** The options a command was given (names only, for the audit log: never their values). */
function fieldsSet(opts: OptionFlags): string[] {
  return Object.entries(opts)
    .filter(([k, v]) => v !== undefined && k !== 'json' && !(k === 'verify' && v === true))
    .map(([k]) => k);
}

export function registerIntegrationCommands(program: Command): void {
  const integration = program.command('integration').description('connect tenants to identity providers');

  addIntegrationOptions(
    integration
      .command('create')
      .description('connect a tenant to an IdP')
      .requiredOption('--tenant <slug>', 'tenant slug')
      .requiredOption('--provider <provider>', 'okta, authentik or scim (the IdP pushes to dirsync)'),
  ).action((opts: OptionFlags & { tenant: string; provider: string }) =>
    withContext(async (ctx) => {
      // Redis first: an integration must not be stored without its schedule.
      const queue = await ctx.queue();
      const service = new IntegrationService(ctx.db, ctx.config);
      const options = await integrationOptions(opts, opts.provider !== 'scim');
      const { integration: created, issued, check } = await audited(
        ctx,
        'integration.create',
        { type: 'integration' },
        () => showingFailedCheck(opts.json, () => service.create({ ...options, tenant: opts.tenant, provider: opts.provider })),
        { detail: { tenant: opts.tenant, provider: opts.provider, fields: fieldsSet(opts) }, created: (r) => ({ id: r.integration.id, tenantId: r.integration.tenantId }) },
      );
      await (await queueModule()).syncSchedule(queue, created);
      const view = { ...service.view(created), ...issued, check };
      emit(opts.json, view, () =>
        !('webhookSecret' in issued)
          ? [
              `created integration ${created.id} (scim for tenant ${created.tenantSlug}): paste these into the IdP's SCIM provisioning settings`,
              `SCIM base URL: ${view.scimBaseUrl}`,
              `SCIM token:    ${issued.scimToken}`,
              '(the token is shown only now; rotate it with `dirsync integration rotate-scim-token`)',
            ].join('\n')
          : [
              `created integration ${created.id} (${created.provider} for tenant ${created.tenantSlug}, ${view.schedule}; full runs ${view.fullEvery})`,
              checkedLine(check),
              `webhook URL:    ${view.webhookUrl}`,
              `webhook secret: ${issued.webhookSecret}`,
              '(the secret is shown only now; rotate it with `dirsync integration rotate-webhook-secret`)',
              ...(issued.scimToken
                ? [
                    `SCIM base URL:  ${view.scimBaseUrl} (pushes are read back through the API at once)`,
                    `SCIM token:     ${issued.scimToken}`,
                    '(the token is shown only now; rotate it with `dirsync integration rotate-scim-token`)',
                  ]
                : []),
            ].join('\n'),
      );
    }),
  );

  addIntegrationOptions(integration.command('update <id>').description("change an integration's settings or token")).action(
    (id: string, opts: OptionFlags) =>
      withContext(async (ctx) => {
        const queue = await ctx.queue();
        const service = new IntegrationService(ctx.db, ctx.config);
        const options = await integrationOptions(opts, (await service.get(id)).provider !== 'scim');
        const { integration: updated, check, scimToken } = await audited(ctx, 'integration.update', { type: 'integration', id }, () => showingFailedCheck(opts.json, () => service.update(id, options)), {
          detail: { fields: fieldsSet(opts) },
        });
        await (await queueModule()).syncSchedule(queue, updated);
        const view = { ...service.view(updated), check, ...(scimToken && { scimToken }) };
        emit(opts.json, view, () =>
          [
            check ? `updated integration ${id}; ${checkedLine(check)}` : `updated integration ${id}`,
            ...(scimToken ? [`SCIM base URL: ${view.scimBaseUrl}`, `SCIM token:    ${scimToken}`, '(the token is shown only now)'] : []),
          ].join('\n'),
        );
      }),
  );

  integration
    .command('test <id>')
    .description('read one page from every IdP endpoint a sync uses, and say which work')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const result = await audited(ctx, 'integration.test', { type: 'integration', id }, () => new IntegrationService(ctx.db, ctx.config).test(id));
        emit(opts.json, result, () => describeReport(result));
        if (!result.ok) throw new UserError(`${failedCount(result)} of ${result.checks.length} endpoints failed the check`);
      }),
    );

  integration
    .command('list')
    .description('list integrations')
    .option('--tenant <slug>', 'only this tenant')
    .addOption(jsonOption())
    .action((opts: { tenant?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const service = new IntegrationService(ctx.db, ctx.config);
        const views = (await service.list(opts.tenant)).map((i) => service.view(i));
        emit(opts.json, views, () =>
          table(
            ['id', 'tenant', 'provider', 'auth', 'baseUrl', 'schedule', 'enabled'],
            views.map((v) => [v.id, v.tenant, v.provider, v.auth, v.baseUrl, v.schedule, v.enabled]),
          ),
        );
      }),
    );

  integration
    .command('show <id>')
    .description('show one integration')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const service = new IntegrationService(ctx.db, ctx.config);
        const view = service.view(await service.get(id));
        const width = Math.max(...Object.keys(view).map((k) => k.length));
        emit(opts.json, view, () => Object.entries(view).map(([k, v]) => `${k.padEnd(width)}  ${v ?? '-'}`).join('\n'));
      }),
    );

  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    integration
      .command(`${name} <id>`)
      .description(enabled ? 'resume scheduled runs, webhooks and SCIM pushes' : 'stop scheduled runs; webhooks and SCIM pushes are rejected')
      .addOption(jsonOption())
      .action((id: string, opts: { json?: boolean }) =>
        withContext(async (ctx) => {
          const queue = await ctx.queue();
          const service = new IntegrationService(ctx.db, ctx.config);
          const updated = await audited(ctx, `integration.${name}`, { type: 'integration', id }, () => service.setEnabled(id, enabled));
          await (await queueModule()).syncSchedule(queue, updated);
          emit(opts.json, service.view(updated), () => `integration ${id} ${enabled ? 'enabled' : 'disabled'}`);
        }),
      );
  }

  integration
    .command('delete <id>')
    .description("delete an integration, with its groups, memberships and run history; its accounts stay, unowned, for another integration to adopt")
    .option('--yes', 'confirm the deletion (required)')
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean; yes?: boolean }) =>
      withContext(async (ctx) => {
        const queue = await ctx.queue();
        const service = new IntegrationService(ctx.db, ctx.config);
        const deleted = await audited(ctx, 'integration.delete', { type: 'integration', id }, async () => {
          await service.get(id);
          if (!opts.yes) {
            throw new RefusedError(`integration delete removes integration ${id} with its groups, memberships and run history: run it again with --yes to confirm`);
          }
          return service.delete(id);
        });
        await (await queueModule()).removeSchedule(queue, id);
        emit(opts.json, service.view(deleted), () => `deleted integration ${id}`);
      }),
    );

  integration
    .command('rotate-scim-token <id>')
    .description("issue a new SCIM bearer token for a scim integration; the old one keeps working for a grace period (only the last one retired is kept)")
    .option('--grace <duration>', 'how long the old token keeps working, such as 15m, 1h or 7d (at most 30d); 0 stops it at once (default: DIRSYNC_WEBHOOK_SECRET_GRACE, or 24h)')
    .addOption(jsonOption())
    .action((id: string, opts: { grace?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const rotation = await audited(ctx, 'integration.rotate-scim-token', { type: 'integration', id }, () => new IntegrationService(ctx.db, ctx.config).rotateScimToken(id, opts.grace));
        const until = rotation.previousScimTokenValidUntil;
        // The token goes last, so that scripts reading the text can take the end of it.
        emit(opts.json, rotation, () =>
          [
            until ? `the old SCIM token still works until ${until}: paste the new one into the IdP before then` : 'the old SCIM token no longer works',
            `new SCIM token for ${id}: ${rotation.scimToken}`,
          ].join('\n'),
        );
      }),
    );

  integration
    .command('rotate-webhook-secret <id>')
    .description('issue a new webhook secret; the old one keeps working for a grace period (only the last one retired is kept)')
    .option('--grace <duration>', 'how long the old secret keeps working, such as 15m, 1h or 7d (at most 30d); 0 stops it at once (default: DIRSYNC_WEBHOOK_SECRET_GRACE, or 24h)')
    .addOption(jsonOption())
    .action((id: string, opts: { grace?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const service = new IntegrationService(ctx.db, ctx.config);
        const rotation = await audited(ctx, 'integration.rotate-webhook-secret', { type: 'integration', id }, () => service.rotateWebhookSecret(id, opts.grace));
        const until = rotation.previousWebhookSecretValidUntil;
        // The secret goes last, so that scripts reading the text can take the end of it.
        emit(opts.json, rotation, () =>
          [
            until ? `the old webhook secret still works until ${until}: give the IdP the new one before then` : 'the old webhook secret no longer works',
            `new webhook secret for ${id}: ${rotation.webhookSecret}`,
          ].join('\n'),
        );
      }),
    );
}
