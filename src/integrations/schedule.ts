import { CronExpressionParser } from 'cron-parser';
import type { Schedule } from '../db/integration.repository.js';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The shortest interval accepted: a full read of a large directory takes minutes. */
export const MIN_EVERY_MS = 60_000;

export class InvalidScheduleError extends Error {
  override name = 'InvalidScheduleError';
}

/** Parses `--every` values such as `30m`, `1h`, `1h30m`, `90s`, `1d`. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  const parts = [...trimmed.matchAll(/(\d+)\s*([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed.replace(/\s+/g, '')) {
    throw new InvalidScheduleError(`--every "${text}" is not a duration: use a number and a unit, such as 15m, 1h or 1d`);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2]!] ?? 0), 0);
}

export function parseSchedule(input: { every?: string | undefined; cron?: string | undefined }): Schedule | undefined {
  if (input.every !== undefined && input.cron !== undefined) {
    throw new InvalidScheduleError('give either --every or --cron, not both');
  }
  if (input.every !== undefined) {
    const ms = parseDuration(input.every);
    if (ms < MIN_EVERY_MS) throw new InvalidScheduleError(`--every ${input.every} is too frequent: the minimum is 1m`);
    return { kind: 'every', ms };
  }
  if (input.cron !== undefined) {
    try {
      CronExpressionParser.parse(input.cron);
    } catch (error) {
      throw new InvalidScheduleError(`--cron "${input.cron}" is not a valid cron expression (${(error as Error).message})`);
    }
    return { kind: 'cron', pattern: input.cron };
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
