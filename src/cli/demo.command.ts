import type { Command } from 'commander';
import { UserError } from '../errors.js';

/** Whole numbers in a range, for the demo's options. */
function whole(name: string, min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new UserError(`${name} must be a whole number from ${min} to ${max}, not "${text}"`);
    return n;
  };
}

/** `dirsync demo` (SPEC): see src/demo/demo.ts. Loaded on use: it pulls in the server, the worker and the Okta SDK. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a demo Okta org and a "demo" tenant, synced and changing every minute, with the console; Ctrl-C stops it')
    .option('--tick <seconds>', 'seconds between two rounds of changes in the demo company', whole('--tick', 1, 3600), 60)
    .option('--people <n>', 'how many people the demo company starts with', whole('--people', 10, 20_000), 500)
    .action(async (opts: { tick: number; people: number }) => {
      const { runDemo } = await import('../demo/demo.js');
      const say = (line: string) => process.stdout.write(`${line}\n`);
      const stop = new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      void stop.then(() => say('stopping the demo: the server, the worker and the demo IdP…'));
      await runDemo({ tickMs: opts.tick * 1000, people: opts.people, say }, stop);
      say('demo stopped; `npx dirsync demo` starts it again (the demo tenant is reset)');
    });
}
