import { Command, CommanderError, type HelpContext } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { DecryptionError } from '../crypto.js';
import { UserError } from '../errors.js';
import { registerDemoCommand } from './demo.command.js';
import { registerDirectoryCommands } from './directory.command.js';
import { registerEventsCommand } from './events.command.js';
import { registerEndpointCommands } from './endpoint.command.js';
import { registerIntegrationCommands } from './integration.command.js';
import { registerReencryptCommand } from './reencrypt.command.js';
import { registerServiceCommands } from './service.command.js';
import { registerSyncCommands } from './sync.command.js';
import { registerTenantCommands } from './tenant.command.js';
import { registerWebhookCommands } from './webhook.command.js';
import { registerTokenCommands } from './token.command.js';
import { registerAuditCommand } from './audit.command.js';
import { isDataError, refusedValue } from '../db/database.js';
import { boundHeapGrowth } from '../heap.js';

/**
 * Commander answers a group command called without its subcommand (`dirsync tenant`) with the
 * whole help on stderr; dirsync answers it with one sentence, like every other mistake.
 */
class DirsyncCommand extends Command {
  override createCommand(name?: string): Command {
    return new DirsyncCommand(name);
  }

  override help(context?: HelpContext): never;
  override help(cb: (str: string) => string): never;
  override help(context?: HelpContext | ((str: string) => string)): never {
    if (typeof context === 'function' || !context?.error) return super.help(context as HelpContext);
    if (!this.parent) return this.error('missing command: `dirsync --help` lists the commands', { code: 'commander.missingCommand' });
    const path = `dirsync ${this.name()}`;
    const names = this.commands.map((c) => c.name());
    const choices = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names.join('');
    return this.error(`missing command: \`${path}\` takes ${choices} (\`${path} --help\` explains them)`, { code: 'commander.missingCommand' });
  }
}

/** Commander's message as one line: its "(Did you mean ...?)" suggestion goes on the same line. */
function oneLine(text: string): string {
  return text.replace(/^error: /, '').replace(/\n\(Did you mean (.+?)\?\)/, ' (did you mean $1?)');
}

/** Builds the `dirsync` program. Commands print data on stdout and one-sentence errors on stderr. */
export function buildProgram(): Command {
  const program = new DirsyncCommand('dirsync')
    .description('Keep tenants\' users, groups and memberships in step with their identity providers.')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`dirsync: ${oneLine(text)}`) });
  registerDemoCommand(program);
  registerServiceCommands(program);
  registerTenantCommands(program);
  registerIntegrationCommands(program);
  registerSyncCommands(program);
  registerDirectoryCommands(program);
  registerEventsCommand(program);
  registerEndpointCommands(program);
  registerWebhookCommands(program);
  registerReencryptCommand(program);
  registerTokenCommands(program);
  registerAuditCommand(program);
  for (const command of allCommands(program)) command.exitOverride().configureOutput(program.configureOutput());
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

export async function main(argv: string[]): Promise<void> {
  // A sync's memory is mostly garbage waiting for V8's next full collection (see heap.ts).
  boundHeapGrowth();
  // `dirsync users … | head`: the reader went away; stop quietly, as Unix tools do.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
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

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** DATABASE_URL's host and port, to tell a failure to reach Postgres from other failures. */
function databaseAddress(): { host: string; port: number } | undefined {
  try {
    const url = new URL(loadConfig().databaseUrl);
    return { host: url.hostname, port: Number(url.port || 5432) };
  } catch {
    return undefined;
  }
}

function sentence(error: unknown): string {
  if (error instanceof UserError || error instanceof ConfigError || error instanceof DecryptionError) return punctuate(error.message);
  const e = error as { code?: string; message?: string; address?: string; port?: number; hostname?: string; syscall?: string } | undefined;
  const text = e?.message ?? String(error);
  const db = databaseAddress();
  const atDb = db && ((e?.code && UNREACHABLE.has(e.code) && (e.port === db.port || e.hostname === db.host)) || /timeout exceeded when trying to connect|due to connection timeout/i.test(text));
  if (db && atDb) {
    const why = e?.code === 'ECONNREFUSED' ? 'connection refused' : e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN' ? 'unknown host' : (e?.code ?? 'no answer');
    return `Cannot connect to PostgreSQL at ${db.host}:${db.port} (${why}): is it running, and is DATABASE_URL right?`;
  }
  if (e?.code === '28P01' || e?.code === '28000') return `PostgreSQL refused the login (${text}): check the user and password in DATABASE_URL.`;
  if (e?.code === '3D000') return `${punctuate(text)} Run \`dirsync migrate\` first, which creates it.`;
  if (e?.code === '42P01') return 'The database has no dirsync tables yet: run `dirsync migrate` first.';
  if (isDataError(error)) return punctuate(refusedValue(error));
  if (/ECONNREFUSED.*6379|Connection is closed|Stream isn't writeable|enableOfflineQueue/i.test(text)) {
    return 'Cannot connect to Redis: is it running, and is REDIS_URL right?';
  }
  if (e?.code === 'EADDRINUSE') return `Port ${e.port ?? ''} is already in use: stop whatever listens there, or set PORT to a free port.`;
  if (e?.code === 'EACCES' && e.syscall === 'listen') return `Port ${e.port ?? ''} needs privileges this process lacks: set PORT to 1024 or above.`;
  if (e?.code === 'ECONNREFUSED') return `Cannot connect to ${e.address ?? 'a service'}:${e.port ?? ''}: is it running?`;
  return punctuate(text);
}

function punctuate(text: string): string {
  const t = text.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}
