import type { EndpointCheck } from '../connectors/connector.js';
import type { ConnectorSettings } from '../connectors/index.js';
import type { PulledIntegration } from '../db/integration.repository.js';
import type { Egress } from '../egress.js';
import { UserError } from '../errors.js';
import { type Credentials, redactCredentials } from './credentials.js';

/** What `integration test` reports: every endpoint a sync uses, each ok or with its problem. */
export interface ConnectionReport {
  readonly ok: boolean;
  readonly checks: readonly EndpointCheck[];
}

/** What a connection needs; an integration not stored yet has all of it too. */
export type ConnectionTarget = Pick<PulledIntegration, 'id' | 'provider' | 'baseUrl' | 'oktaAppId' | 'authentikApp'>;

// An admin is waiting: a shorter timeout than a sync's, and a 429 is reported, not waited out.
const CHECK_SETTINGS: ConnectorSettings = { requestTimeoutMs: 15_000, max429Retries: 0 };

/**
 * Tries every endpoint a sync uses, one page each, connecting only where `egress` allows
 * (egressFor(config) in the product); secrets are scrubbed from the messages.
 */
export async function checkConnection(target: ConnectionTarget, credentials: Credentials, egress: Egress, settings: ConnectorSettings = CHECK_SETTINGS): Promise<ConnectionReport> {
  // Loaded here, not at the top: the IdP SDKs take most of a second to load, and every CLI
  // command imports this module though few talk to an IdP.
  const { createConnector } = await import('../connectors/index.js');
  // An IdP or a proxy may echo the Authorization header into an error this report quotes.
  const checks = (await createConnector(target, credentials, egress, settings).check()).map((c) =>
    c.ok ? c : { ...c, message: redactCredentials(c.message, credentials) },
  );
  return { ok: checks.every((c) => c.ok), checks };
}

/** Endpoints that failed, not counting those not tried because an earlier one failed. */
export function failedCount(report: ConnectionReport): number {
  return report.checks.filter((c) => !c.ok && c.problem !== 'not-checked').length;
}

/** `integration create` or `update` refused because the check failed; nothing was stored. */
export class VerificationError extends UserError {
  override name = 'VerificationError';
  constructor(readonly report: ConnectionReport) {
    const failed = failedCount(report);
    super(
      `the IdP check failed at ${failed} endpoint${failed === 1 ? '' : 's'}, so nothing was stored: fix the settings, or store them unchecked (--no-verify; "verify": false in the API)`,
    );
  }
}

/** The report as lines for a terminal: one per endpoint. */
export function describeReport(report: ConnectionReport): string {
  const width = Math.max(...report.checks.map((c) => c.endpoint.length));
  return report.checks
    .map((c) => {
      const mark = c.ok ? 'ok     ' : c.problem === 'not-checked' ? 'skipped' : 'FAILED ';
      const text = c.ok ? (c.note ?? '') : c.message;
      return `${mark}  ${c.endpoint.padEnd(width)}  ${text}`.trimEnd();
    })
    .join('\n');
}
