import { type EndpointCheck, IdpReadError, type RetryOptions } from './connector.js';
import type { ProblemKind } from './problems.js';

/** One endpoint `integration test` tries: a single page, or the token request. */
export interface CheckStep {
  /** Path as the report shows it, such as /api/v1/users. */
  readonly endpoint: string;
  readonly method?: 'GET' | 'POST';
  /** Nothing else can be checked if this fails (the token request). */
  readonly gate?: boolean;
  /** Resolves with a note when the endpoint could not be tried but nothing is wrong (no group to list). */
  readonly run: () => Promise<string | void>;
}

/** A check answers at once: a retry would only hide from the admin what a sync would meet. */
export const NO_RETRY: RetryOptions = Object.freeze({ retries: 0, minTimeoutMs: 0, maxTimeoutMs: 0 });

// After one of these, every later endpoint would fail the same way: they are not tried.
const BLOCKING: ReadonlySet<ProblemKind> = new Set(['wrong-url', 'private-address', 'tls', 'timeout', 'unreachable', 'unauthorized']);

/** Runs the steps in order and reports each; see Connector.check. */
export async function runChecks(steps: readonly CheckStep[], attempt: (step: CheckStep) => Promise<string | void>): Promise<EndpointCheck[]> {
  const results: EndpointCheck[] = [];
  let blocked: string | undefined;
  for (const step of steps) {
    const endpoint = `${step.method ?? 'GET'} ${step.endpoint}`;
    if (blocked) {
      results.push({ endpoint, ok: false, problem: 'not-checked', message: `not checked: ${blocked}` });
      continue;
    }
    try {
      const note = await attempt(step);
      results.push(typeof note === 'string' ? { endpoint, ok: true, note } : { endpoint, ok: true });
    } catch (error) {
      const problem = error instanceof IdpReadError ? error.problem : undefined;
      results.push({ endpoint, ok: false, problem: problem?.kind ?? 'failed', message: problem?.message ?? (error as Error).message });
      if (step.gate || (problem && BLOCKING.has(problem.kind))) blocked = `${endpoint} failed`;
    }
  }
  return results;
}
