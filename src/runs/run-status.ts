import type { RunSummary } from '../db/run.repository.js';

/** A run's status as people read it (console, CLI tables): `css` picks its colour, `held` marks it on the console's chart. */
export interface RunStatusLabel {
  readonly text: string;
  readonly css: RunSummary['status'];
  /** Held now, or held once and settled since (approved or rejected). */
  readonly held: boolean;
}

/**
 * A run's status for lists, charts and the run page. A held run that an admin settled is
 * closed as `succeeded` (what it applied stands), which alone would hide that it waited:
 * it reads "held → approved" or "held → rejected". Approval is recorded (approvedAt); a
 * settled held run without it was rejected (RunRepository.reject).
 */
export function runStatusLabel(run: Pick<RunSummary, 'status' | 'heldReason' | 'approvedAt'>): RunStatusLabel {
  if (run.status === 'succeeded' && run.heldReason !== null) {
    return { text: run.approvedAt ? 'held → approved' : 'held → rejected', css: run.approvedAt ? 'succeeded' : 'held', held: true };
  }
  return { text: run.status, css: run.status, held: run.status === 'held' };
}

/**
 * A held run's reason for a page or a table: without the CLI's `dirsync run approve …` hint
 * (in backticks, for a terminal; older rows may keep its empty "()" after a settled run's
 * rewrite), and, for a run that is no longer held, in the past tense ("waited for approval").
 */
export function readableHeldReason(run: Pick<RunSummary, 'status' | 'heldReason'>): string | null {
  if (run.heldReason === null) return null;
  const plain = run.heldReason.replace(/ ?\(`dirsync run approve [^`]*`\)| ?\(\)/, '').replace(/`/g, '');
  return run.status === 'held' ? plain : plain.replace(/\bwaits? for approval\b/, 'waited for approval');
}
