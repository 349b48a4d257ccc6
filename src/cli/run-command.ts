import { CliContext } from './context.js';

/**
 * Runs a command body with a context that is closed afterwards, whatever happens, so the
 * process exits as soon as the command is done (no dangling pools or sockets).
 */
export async function withContext<T>(body: (ctx: CliContext) => Promise<T>, options: { logLevel?: string } = {}): Promise<T> {
  const ctx = new CliContext({ logLevel: options.logLevel ?? process.env.LOG_LEVEL ?? 'warn' });
  try {
    return await body(ctx);
  } finally {
    await ctx.close();
  }
}
