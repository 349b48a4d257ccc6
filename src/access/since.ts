import { UserError } from '../errors.js';

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The longest look back `--since` takes: ten years. */
export const MAX_SINCE_MS = 3650 * 86_400_000;

/**
 * `--since` (CLI) or `?since=` (API): a duration back from `now`, such as `30m`, `24h` or `7d`
 * (one number and one unit: m, h or d; at most 3650d). Throws UserError otherwise.
 */
export function parseSince(text: string, now = Date.now()): Date {
  const match = /^(\d{1,7})([mhd])$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNITS[match[2]!]! : Number.NaN;
  if (!match || ms > MAX_SINCE_MS) throw new UserError(`--since "${text.slice(0, 40)}" is not a duration from 1m to 3650d: use a number and a unit, such as 30m, 24h or 7d`);
  return new Date(now - ms);
}
