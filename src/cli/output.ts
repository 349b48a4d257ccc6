import Table from 'cli-table3';
import { Option } from 'commander';
import { UserError } from '../errors.js';
import type { RunChange, RunSummary } from '../db/run.repository.js';
import { PLAN_KINDS, type PlanCounts } from '../core/plan.js';
import { changeState } from '../runs/change-state.js';
import { readableHeldReason, runStatusLabel } from '../runs/run-status.js';

export const jsonOption = () => new Option('--json', 'print one JSON value');

/** `--limit` of a listing: a whole number from 1 to 1000. */
export function parseLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UserError(`--limit must be a whole number from 1 to 1000, not "${text}"`);
  return limit;
}

/** Prints one JSON value (with --json) or the human rendering. */
export function emit(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/**
 * A table for people (cli-table3): a header row and bordered columns, `-` for a missing value.
 * On a terminal the widest columns wrap so the table fits its width; piped, nothing wraps (one
 * record per line stays greppable). `--json` is the form for programs.
 */
export function table(headers: string[], rows: (string | number | boolean | null)[][], width = process.stdout.isTTY ? process.stdout.columns : undefined): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => r.map((c) => (c === null ? '-' : String(c))));
  const natural = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => longestLine(r[i] ?? ''))) + 2);
  const colWidths = width ? fitWidths(natural, width - (headers.length + 1)) : natural;
  // cli-table3's layout grows with the square of the rows (18,000 took 96 s), so it draws a
  // chunk at a time with the same fixed widths, and the chunks are joined at their borders.
  const parts: string[] = [];
  for (let at = 0; at < cells.length; at += TABLE_CHUNK) {
    const t = new Table({ head: at === 0 ? headers : [], colWidths, wordWrap: true, wrapOnWordBoundary: false, style: { head: [], border: [], compact: true } });
    t.push(...cells.slice(at, at + TABLE_CHUNK));
    const lines = t.toString().split('\n');
    const last = at + TABLE_CHUNK >= cells.length;
    parts.push(...lines.slice(at === 0 ? 0 : 1, last ? lines.length : -1));
  }
  return parts.join('\n');
}

/** Rows cli-table3 lays out at once (see table). */
const TABLE_CHUNK = 200;

function longestLine(text: string): number {
  return Math.max(...text.split('\n').map((line) => line.length));
}

/** Column widths within `available` characters: the widest columns give way first, none below 8. */
export function fitWidths(natural: readonly number[], available: number): number[] {
  const widths = [...natural];
  let excess = widths.reduce((a, b) => a + b, 0) - available;
  while (excess > 0) {
    const widest = widths.indexOf(Math.max(...widths));
    if (widths[widest]! <= 8) break;
    const second = Math.max(8, ...widths.filter((_, i) => i !== widest));
    const cut = Math.min(excess, Math.max(1, widths[widest]! - second));
    widths[widest] = Math.max(8, widths[widest]! - cut);
    excess -= cut;
  }
  return widths;
}

const LABELS: Record<(typeof PLAN_KINDS)[number], string> = {
  usersCreated: 'users created',
  usersUpdated: 'users updated',
  usersDeprovisioned: 'users deprovisioned',
  usersReprovisioned: 'users reprovisioned',
  groupsCreated: 'groups created',
  groupsUpdated: 'groups updated',
  groupsDeleted: 'groups deleted',
  membershipsAdded: 'memberships added',
  membershipsRemoved: 'memberships removed',
};

/** A run's counts in words, "1 user created, 2 groups deleted", or "none". */
export function describeCounts(counts: Partial<PlanCounts>): string {
  const changes = PLAN_KINDS.filter((k) => (counts[k] ?? 0) > 0).map((k) => {
    const n = counts[k] ?? 0;
    // "1 user created", "2 users created"
    return `${n} ${n === 1 ? LABELS[k].replace(/s (\w+)$/, ' $1') : LABELS[k]}`;
  });
  return changes.length ? changes.join(', ') : 'none';
}

export function describeRun(run: RunSummary): string {
  const lines = [
    `run ${run.id}${run.dryRun ? ' (dry run)' : ''}`,
    `  status:    ${runStatusLabel(run).text}`,
    `  trigger:   ${run.trigger}`,
    `  mode:      ${run.mode}`,
    `  queued:    ${run.queuedAt}`,
    `  started:   ${run.startedAt ?? '-'}`,
    `  finished:  ${run.finishedAt ?? '-'}`,
  ];
  if (run.counts) lines.push(`  changes:   ${describeCounts(run.counts)}`);
  if (run.heldReason) lines.push(run.status !== 'held' ? `  was held:  ${readableHeldReason(run)}` : `  held:      ${run.heldReason}`);
  if (run.approvesRunId) lines.push(`  approves:  run ${run.approvesRunId}`);
  if (run.approvedByRunId) lines.push(`  approved:  ${run.approvedAt} by run ${run.approvedByRunId}`);
  if (run.error) lines.push(`  error:     ${run.error}`);
  if (run.warnings.length > 0) {
    // IdP records skipped, and notes on how the run read (a login nobody has, why it read the whole scope).
    lines.push(`  warnings:  ${run.warnings.length}`);
    for (const w of run.warnings) lines.push(`    - ${w.subject}${w.externalId && w.externalId !== w.subject ? ` (${w.externalId})` : ''}: ${w.reason}`);
  }
  return lines.join('\n');
}

export function describeChanges(changes: RunChange[], run: RunSummary): string {
  if (changes.length === 0) return run.dryRun ? 'plan: nothing to change' : 'change log: nothing changed';
  const rows = changes.map((c) => [c.kind, c.subject, changeState(c, run), c.detail ? compact(c.detail) : '']);
  return `${run.dryRun ? 'plan (not applied)' : 'change log'}:\n${table(['change', 'subject', 'state', 'detail'], rows)}`;
}

function compact(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}
