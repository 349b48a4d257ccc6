import { CronExpressionParser } from 'cron-parser';
import type { Schedule } from '../db/integration.repository.js';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The shortest interval accepted: a full read of a large directory takes minutes. */
export const MIN_EVERY_MS = 60_000;

/** The longest interval accepted: a year (a schedule rarer than that is a manual integration). */
export const MAX_EVERY_MS = 365 * 86_400_000;

export class InvalidScheduleError extends Error {
  override name = 'InvalidScheduleError';
}

/** Parses `--every` (or `option`) values such as `30m`, `1h`, `1h30m`, `90s`, `1d`. */
export function parseDuration(text: string, option = '--every'): number {
  const trimmed = text.trim();
  const parts = [...trimmed.matchAll(/(\d+)\s*([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed.replace(/\s+/g, '')) {
    throw new InvalidScheduleError(`${option} "${text}" is not a duration: use a number and a unit, such as 15m, 1h or 1d`);
  }
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2]!] ?? 0), 0);
  if (!Number.isSafeInteger(ms)) throw new InvalidScheduleError(`${option} "${text.slice(0, 40)}" is too long: the maximum is 365d`);
  return ms;
}

export function parseSchedule(input: { every?: string | undefined; cron?: string | undefined }): Schedule | undefined {
  if (input.every !== undefined && input.cron !== undefined) {
    throw new InvalidScheduleError('give either --every or --cron, not both');
  }
  if (input.every !== undefined) {
    const ms = parseDuration(input.every);
    if (ms < MIN_EVERY_MS) throw new InvalidScheduleError(`--every ${input.every} is too frequent: the minimum is 1m`);
    if (ms > MAX_EVERY_MS) throw new InvalidScheduleError(`--every ${input.every} is too long: the maximum is 365d`);
    return { kind: 'every', ms };
  }
  if (input.cron !== undefined) {
    // Five fields (minute hour day month weekday), so runs are at least a minute apart: a
    // sixth (seconds) field or a macro would slip under the one-minute minimum or hide it.
    const fields = input.cron.trim().split(/\s+/);
    if (fields.length !== 5 || fields.some((f) => f.startsWith('@'))) {
      throw new InvalidScheduleError(`--cron "${input.cron.slice(0, 80)}" must have exactly five fields (minute hour day-of-month month day-of-week), such as "0 * * * *"`);
    }
    try {
      CronExpressionParser.parse(fields.join(' '));
    } catch (error) {
      throw new InvalidScheduleError(`--cron "${input.cron.slice(0, 80)}" is not a valid cron expression (${(error as Error).message})`);
    }
    return { kind: 'cron', pattern: fields.join(' ') };
  }
  return undefined;
}

export function describeSchedule(schedule: Schedule | null): string {
  if (!schedule) return 'manual only';
  if (schedule.kind === 'cron') return `cron ${schedule.pattern}`;
  const ms = schedule.ms;
  for (const [unit, size] of [['d', UNITS.d!], ['h', UNITS.h!], ['m', UNITS.m!]] as const) {
    if (ms % size === 0) return `every ${ms / size}${unit}`;
  }
  return `every ${ms / 1000}s`;
}
