import type { RunSummary } from '../db/run.repository.js';
import { readableHeldReason } from '../runs/run-status.js';

/** An integration's health as the console shows it, after WorkOS's directory states. */
export type HealthState = 'healthy' | 'failing' | 'invalid-credentials' | 'held' | 'disabled' | 'never-synced' | 'syncing';

export interface Health {
  readonly state: HealthState;
  readonly label: string;
  /** The last error, or why the plan is held. */
  readonly detail: string | null;
}

const LABELS: Record<HealthState, string> = {
  healthy: 'healthy',
  failing: 'failing',
  'invalid-credentials': 'invalid credentials',
  held: 'held: awaiting approval',
  disabled: 'disabled',
  'never-synced': 'not synced yet',
  syncing: 'first sync running',
};

// The IdP refused the credentials (401/403) or their rights: the connectors' worded problems.
const CREDENTIALS = /\b(HTTP )?40[13]\b|rejected the (API|access) token|lacks the scope|may not (read|use)|invalid_client|unauthorized_client/i;

/** Whether a run's error says the IdP refused the integration's credentials. */
export function isCredentialError(error: string | null): boolean {
  return error !== null && CREDENTIALS.test(error);
}

/**
 * Health from the integration's state and its runs: disabled first, then a held plan (an admin
 * must act), then the last finished run that was not a dry run (failed with a 401/403: invalid
 * credentials; failed otherwise: failing; else healthy).
 */
export function healthOf(input: { enabled: boolean; held: RunSummary | undefined; lastFinished: RunSummary | undefined; running: boolean }): Health {
  const at = (state: HealthState, detail: string | null = null): Health => ({ state, label: LABELS[state], detail });
  if (!input.enabled) return at('disabled');
  if (input.held) return at('held', readableHeldReason(input.held));
  const last = input.lastFinished;
  if (!last) return at(input.running ? 'syncing' : 'never-synced');
  if (last.status === 'failed') return at(isCredentialError(last.error) ? 'invalid-credentials' : 'failing', last.error);
  return at('healthy');
}

