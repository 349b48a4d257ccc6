import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr, so a command's --json output on stdout stays clean.
 * Anything that looks like a credential is redacted, wherever it is nested.
 */
export function createLogger(level: string, name = 'dirsync'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['token', 'credentials', 'privateKey', 'authorization', 'webhookSecret', 'scimToken', '*.token', '*.credentials', '*.privateKey', '*.authorization', '*.webhookSecret', '*.scimToken', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
