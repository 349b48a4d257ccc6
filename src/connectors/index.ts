import type { PulledIntegration } from '../db/integration.repository.js';
import type { Egress } from '../egress.js';
import type { Credentials } from '../integrations/credentials.js';
import type { Connector, RetryOptions } from './connector.js';
import { AuthentikConnector } from './authentik/authentik.connector.js';
import { OktaConnector } from './okta/okta.connector.js';

export interface ConnectorSettings {
  readonly retry?: RetryOptions;
  readonly requestTimeoutMs?: number;
  /** Okta only: share of each rate-limit bucket a sync may use. */
  readonly rateLimitShare?: number;
  /** Okta only: 429s the SDK waits out and retries itself. */
  readonly max429Retries?: number;
}

/**
 * The one place that knows which connector serves which provider. `egress` says where its
 * requests may connect (egressFor(config) in the product).
 */
export function createConnector(
  integration: Pick<PulledIntegration, 'id' | 'provider' | 'baseUrl' | 'oktaAppId' | 'authentikApp'>,
  credentials: Credentials,
  egress: Egress,
  settings: ConnectorSettings = {},
): Connector {
  switch (integration.provider) {
    case 'okta':
      return new OktaConnector({
        orgUrl: integration.baseUrl,
        credentials,
        egress,
        appId: integration.oktaAppId,
        ...settings,
      });
    case 'authentik':
      if (credentials.kind !== 'token') throw new Error(`authentik integration ${integration.id} holds ${credentials.kind} credentials; it needs an API token`);
      return new AuthentikConnector({
        baseUrl: integration.baseUrl,
        token: credentials.token,
        egress,
        appSlug: integration.authentikApp,
        ...(settings.retry && { retry: settings.retry }),
        ...(settings.requestTimeoutMs !== undefined && { requestTimeoutMs: settings.requestTimeoutMs }),
      });
  }
}
