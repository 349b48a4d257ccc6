import { Option } from 'commander';
import { UserError } from '../errors.js';
import type { RunChange, RunSummary } from '../db/run.repository.js';
import { PLAN_KINDS, type PlanCounts } from '../core/plan.js';
import { changeState } from '../runs/change-state.js';

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

/** A plain text table: a header row and aligned columns. */
export function table(headers: string[], rows: (string | number | boolean | null)[][]): string {
  if (rows.length === 0) return '(none)';
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
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
    `  status:    ${run.status}`,
    `  trigger:   ${run.trigger}`,
    `  mode:      ${run.mode}`,
    `  queued:    ${run.queuedAt}`,
    `  started:   ${run.startedAt ?? '-'}`,
    `  finished:  ${run.finishedAt ?? '-'}`,
  ];
  if (run.counts) lines.push(`  changes:   ${describeCounts(run.counts)}`);
  if (run.heldReason) lines.push(run.approvedByRunId ? `  was held:  ${run.heldReason.replace(/ \(`dirsync run approve [^`]*`\)/, '')}` : `  held:      ${run.heldReason}`);
  if (run.approvesRunId) lines.push(`  approves:  run ${run.approvesRunId}`);
  if (run.approvedByRunId) lines.push(`  approved:  ${run.approvedAt} by run ${run.approvedByRunId}`);
  if (run.error) lines.push(`  error:     ${run.error}`);
  if (run.warnings.length > 0) {
    lines.push(`  warnings:  ${run.warnings.length === 1 ? '1 IdP record' : `${run.warnings.length} IdP records`} skipped:`);
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
