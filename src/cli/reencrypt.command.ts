import type { Command } from 'commander';
import { requireKeyring } from '../config.js';
import { type ReencryptReport, reencryptCredentials } from '../integrations/reencrypt.js';
import { emit, jsonOption, table } from './output.js';
import { withContext } from './run-command.js';
import { audited } from './audited.js';

function describeReencryption(report: ReencryptReport): string {
  const lines = [`re-encrypted ${report.reencrypted}, already current ${report.alreadyCurrent}, failed ${report.failed}`];
  if (report.failed > 0) {
    lines.push(
      '',
      table(['integration or endpoint', 'reason'], report.failures.map((f) => ['integrationId' in f ? f.integrationId : `endpoint ${f.endpointId}`, f.reason])),
      '',
      'the others are done; fix the keys of the failed ones and run `dirsync reencrypt` again',
    );
  }
  return lines.join('\n');
}

export function registerReencryptCommand(program: Command): void {
  program
    .command('reencrypt')
    .description(
      "re-encrypt every integration's credentials and every event endpoint's signing secret under DIRSYNC_ENCRYPTION_KEY, reading old ones with DIRSYNC_ENCRYPTION_KEY_PREVIOUS (safe to interrupt and run again)",
    )
    .addOption(jsonOption())
    .action((opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const keys = requireKeyring(ctx.config);
        const report = await audited(ctx, 'credentials.reencrypt', { type: 'credentials' }, () => reencryptCredentials(ctx.db, keys));
        emit(opts.json, report, () => describeReencryption(report));
        if (report.failed > 0) process.exitCode = 1;
      }),
    );
}
