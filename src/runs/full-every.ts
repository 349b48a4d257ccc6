/** How often a scheduled (or plain `dirsync sync`) run reads the whole scope when the integration does not say (SPEC `--full-every`): a day. */
export const DEFAULT_FULL_EVERY_MS = 24 * 3_600_000;
