import { InvalidScheduleError, parseDuration } from './schedule.js';

/** The longest grace period: a rotation is meant to retire the old secret, not to keep two. */
const MAX_GRACE_MS = 30 * 86_400_000;

/** What a grace period must be, completing a sentence that starts with its name. */
export const GRACE_RULE = 'must be 0 or a duration of at most 30d, such as 15m, 1h or 7d';

/**
 * Parses how long a rotated webhook secret keeps working: `0` (it stops at once) or a
 * duration such as `15m`, `1h` or `7d`. Returns milliseconds, or undefined if `text` is not one.
 *
 * @example parseGrace('1h') // 3_600_000
 */
export function parseGrace(text: string): number | undefined {
  if (/^\s*0+\s*$/.test(text)) return 0;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (error) {
    if (error instanceof InvalidScheduleError) return undefined;
    throw error;
  }
  return ms <= MAX_GRACE_MS ? ms : undefined;
}
