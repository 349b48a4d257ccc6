import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { DecryptionError } from '../crypto.js';
import { UserError } from '../errors.js';
import { registerDirectoryCommands } from './directory.command.js';
import { registerIntegrationCommands } from './integration.command.js';
import { registerServiceCommands } from './service.command.js';
import { registerSyncCommands } from './sync.command.js';
import { registerTenantCommands } from './tenant.command.js';
import { registerWebhookCommands } from './webhook.command.js';

/** Builds the `dirsync` program. Commands print data on stdout and one-sentence errors on stderr. */
export function buildProgram(): Command {
  const program = new Command('dirsync')
    .description('Keep tenants\' users, groups and memberships in step with their identity providers.')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`dirsync: ${text.replace(/^error: /, '')}`) });
  registerServiceCommands(program);
  registerTenantCommands(program);
  registerIntegrationCommands(program);
  registerSyncCommands(program);
  registerDirectoryCommands(program);
  registerWebhookCommands(program);
  for (const command of allCommands(program)) command.exitOverride().configureOutput(program.configureOutput());
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = reportError(error);
  }
}

/** Turns any failure into one sentence on stderr and an exit code. */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message (or help/version, with exit code 0).
    return error.exitCode;
  }
  const message = sentence(error);
  process.stderr.write(`dirsync: ${message}\n`);
  if (process.env.LOG_LEVEL === 'debug' && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return 1;
}

function sentence(error: unknown): string {
  if (error instanceof UserError || error instanceof ConfigError || error instanceof DecryptionError) return punctuate(error.message);
  const e = error as { code?: string; message?: string; address?: string; port?: number } | undefined;
  const text = e?.message ?? String(error);
  if (e?.code === 'ECONNREFUSED' && e.port === 5432) {
    return 'Cannot connect to PostgreSQL: is it running, and is DATABASE_URL right?';
  }
  if (e?.code === '3D000') return `${punctuate(text)} Run \`dirsync migrate\` first, which creates it.`;
  if (e?.code === '42P01') return 'The database has no dirsync tables yet: run `dirsync migrate` first.';
  if (/ECONNREFUSED.*6379|Connection is closed|Stream isn't writeable|enableOfflineQueue/i.test(text)) {
    return 'Cannot connect to Redis: is it running, and is REDIS_URL right?';
  }
  if (e?.code === 'ECONNREFUSED') return `Cannot connect to ${e.address ?? 'a service'}:${e.port ?? ''}: is it running?`;
  return punctuate(text);
}

function punctuate(text: string): string {
  const t = text.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}
