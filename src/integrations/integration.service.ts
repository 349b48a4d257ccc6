import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import { requireEncryptionKey, requireKeyring } from '../config.js';
import { type DeprovisionMode, isDeprovisionMode } from '../core/policy.js';
import { hashSecret, newSecret } from '../crypto.js';
import type { Db } from '../db/database.js';
import { type Integration, IntegrationRepository, type PulledIntegration, type Schedule } from '../db/integration.repository.js';
import type { IntegrationRowUpdate, Provider, PulledProvider } from '../db/schema.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { isUuid } from '../db/run.repository.js';
import { type ConnectionReport, type ConnectionTarget, VerificationError, checkConnection } from './connection-check.js';
import { type CredentialKind, type Credentials, openCredentials, sealCredentials } from './credentials.js';
import { parseOktaPrivateKey } from './okta-private-key.js';
import { InvalidScheduleError, MAX_EVERY_MS, describeSchedule, parseDuration, parseSchedule } from './schedule.js';
import { DEFAULT_FULL_EVERY_MS } from '../runs/full-every.js';
import { GRACE_RULE, parseGrace } from './webhook-secret-grace.js';
import { deleteIntegration } from './integration-removal.js';
import { egressFor } from '../egress.js';
import { outboundRefusal } from '../outbound.js';

export interface IntegrationOptions {
  baseUrl?: string | undefined;
  token?: string | undefined;
  /** Okta service app: its client id, private key (PEM or JWK text) and key id. */
  oktaClientId?: string | undefined;
  oktaPrivateKey?: string | undefined;
  oktaKeyId?: string | undefined;
  oktaAppId?: string | undefined;
  authentikApp?: string | undefined;
  deprovision?: string | undefined;
  threshold?: string | undefined;
  every?: string | undefined;
  cron?: string | undefined;
  /** How often a scheduled run reads the whole scope instead of the change feed (`--full-every`). */
  fullEvery?: string | undefined;
  /**
   * okta, authentik: also take SCIM pushes (`--scim`), each a targeted read through the API;
   * false (`--no-scim`) stops taking them.
   */
  scim?: boolean | undefined;
  /** false stores without checking the IdP first (--no-verify). */
  verify?: boolean | undefined;
}

export interface CreateIntegrationInput extends IntegrationOptions {
  tenant: string;
  provider: string;
}

/** The integration as the CLI and API show it: never credentials. */
export interface IntegrationView {
  id: string;
  tenant: string;
  provider: Provider;
  /** The IdP's address; null for scim (the IdP pushes to `scimBaseUrl`). */
  baseUrl: string | null;
  /** token (an API token) or okta-private-key (an Okta OAuth service app) */
  auth: CredentialKind;
  oktaClientId: string | null;
  oktaAppId: string | null;
  authentikApp: string | null;
  deprovisionMode: DeprovisionMode;
  thresholdPercent: number | null;
  schedule: string;
  /** okta, authentik: how often a scheduled run reads the whole scope rather than the change feed, such as "every 1d". */
  fullEvery?: string;
  enabled: boolean;
  /** okta, authentik: where the IdP's event hook / notification webhook posts. */
  webhookUrl?: string;
  /** Until when the webhook secret retired by the last rotation still works; null when none does. */
  previousWebhookSecretValidUntil?: string | null;
  /** scim: what the admin pastes into the IdP as the SCIM base URL (SPEC "HTTP"). */
  scimBaseUrl?: string;
  /** scim: until when the token retired by the last rotation still works; null when none does. */
  previousScimTokenValidUntil?: string | null;
  createdAt: string;
  updatedAt: string;
}

/** What a rotation returns: the new secret (shown only now) and until when the old one works. */
export interface WebhookSecretRotation {
  id: string;
  webhookSecret: string;
  previousWebhookSecretValidUntil: string | null;
}

/** What a scim token rotation returns: the new token (shown only now) and until when the old one works. */
export interface ScimTokenRotation {
  id: string;
  scimToken: string;
  previousScimTokenValidUntil: string | null;
}

/** The secret a new integration is given, shown only once: a webhook secret, or a scim integration's token. */
export type IssuedSecret = { readonly webhookSecret: string; readonly scimToken?: string } | { readonly scimToken: string };

/** What `integration test` answers: which integration, and the report. */
export type IntegrationTestResult = Pick<IntegrationView, 'id' | 'provider' | 'baseUrl' | 'auth'> & ConnectionReport;

const PROVIDERS: readonly Provider[] = ['okta', 'authentik', 'scim'];

/** Options that only make sense for an integration dirsync reads from, by flag. */
const PULL_ONLY: ReadonlyArray<[keyof IntegrationOptions, string]> = [
  ['baseUrl', '--base-url'],
  ['token', '--token'],
  ['oktaClientId', '--okta-client-id'],
  ['oktaPrivateKey', '--okta-private-key-file'],
  ['oktaKeyId', '--okta-key-id'],
  ['oktaAppId', '--okta-app-id'],
  ['authentikApp', '--authentik-app'],
  ['every', '--every'],
  ['cron', '--cron'],
  ['fullEvery', '--full-every'],
  ['scim', '--scim'],
];

/** Validates and stores integrations; encrypts credentials under DIRSYNC_ENCRYPTION_KEY. */
export class IntegrationService {
  private readonly integrations: IntegrationRepository;
  private readonly tenants: TenantRepository;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {
    this.integrations = new IntegrationRepository(db);
    this.tenants = new TenantRepository(db);
  }

  async create(input: CreateIntegrationInput): Promise<{ integration: Integration; issued: IssuedSecret; check: ConnectionReport | null }> {
    const tenant = await this.tenants.findBySlug(input.tenant);
    if (!tenant) throw new NotFoundError(`tenant "${input.tenant}" does not exist: create it with \`dirsync tenant create ${input.tenant}\``);
    if (!(PROVIDERS as readonly string[]).includes(input.provider)) {
      throw new UserError(`--provider must be one of ${PROVIDERS.join(', ')}, not "${input.provider}"`);
    }
    if (input.provider === 'scim') return this.createScim(tenant.id, input);
    const provider = input.provider as PulledProvider;
    if (input.baseUrl === undefined) {
      throw new UserError(
        provider === 'okta'
          ? '--base-url is required: the Okta org URL, such as https://example.okta.com'
          : '--base-url is required: the authentik address, such as https://auth.example.com',
      );
    }
    const key = requireEncryptionKey(this.config);
    const fields = this.validate(provider, input);
    const credentials = await this.newCredentials(provider, input, undefined);
    if (!credentials) {
      throw new UserError(
        provider === 'okta'
          ? '--token or --okta-client-id with --okta-private-key-file is required: an Okta API token, or an OAuth service app granted okta.users.read, okta.groups.read (and okta.apps.read with --okta-app-id)'
          : '--token is required: an authentik API token of a user who may view users, groups, applications and policy bindings',
      );
    }
    const id = randomUUID();
    const target = { id, provider, baseUrl: fields.base_url ?? '', oktaAppId: fields.okta_app_id ?? null, authentikApp: fields.authentik_app ?? null };
    // Before anything is stored: a typo is caught now, not at the first scheduled run.
    const check = input.verify === false ? null : await this.verify(target, credentials);
    const webhookSecret = newSecret();
    const scimToken = input.scim ? newSecret() : undefined;
    await this.integrations.insert({
      id,
      tenant_id: tenant.id,
      provider,
      base_url: target.baseUrl,
      ...this.credentialColumns(key, id, credentials),
      okta_app_id: target.oktaAppId,
      authentik_app: target.authentikApp,
      deprovision_mode: fields.deprovision_mode ?? 'suspend',
      threshold_percent: fields.threshold_percent ?? null,
      schedule_every_ms: fields.schedule_every_ms ?? null,
      schedule_cron: fields.schedule_cron ?? null,
      // Only when given: an integration made at an older schema (the migration tests) has no such column.
      ...(fields.full_every_ms !== undefined && { full_every_ms: fields.full_every_ms }),
      webhook_secret_hash: hashSecret(webhookSecret),
      ...(scimToken && { scim_token_hash: hashSecret(scimToken) }),
      updated_at: new Date(),
    });
    return { integration: await this.get(id), issued: { webhookSecret, ...(scimToken && { scimToken }) }, check };
  }

  /**
   * A scim integration: no address or credentials to check, a bearer token for the IdP to
   * present (stored as its SHA-256 only, so it is shown once), and no schedule: the IdP pushes.
   */
  private async createScim(tenantId: string, input: CreateIntegrationInput): Promise<{ integration: Integration; issued: IssuedSecret; check: null }> {
    this.refusePullOnly(input);
    const fields = this.validate('scim', input);
    const id = randomUUID();
    const scimToken = newSecret();
    await this.integrations.insert({
      id,
      tenant_id: tenantId,
      provider: 'scim',
      base_url: null,
      credentials: null,
      deprovision_mode: fields.deprovision_mode ?? 'suspend',
      threshold_percent: fields.threshold_percent ?? null,
      // Never presented: nothing posts IdP events to a scim integration.
      webhook_secret_hash: hashSecret(newSecret()),
      scim_token_hash: hashSecret(scimToken),
      updated_at: new Date(),
    });
    return { integration: await this.get(id), issued: { scimToken }, check: null };
  }

  private refusePullOnly(options: IntegrationOptions): void {
    const given = PULL_ONLY.filter(([key]) => options[key] !== undefined).map(([, flag]) => flag);
    if (given.length > 0) {
      throw new UserError(`${given.join(', ')} ${given.length === 1 ? 'does' : 'do'} not apply to a scim integration: the IdP pushes to its SCIM endpoint, so only --deprovision and --threshold can be set`);
    }
  }

  /**
   * Changes settings; a change to how dirsync reaches the IdP (address, credentials, app) is
   * checked against the IdP first unless `verify` is false.
   */
  async update(id: string, options: IntegrationOptions): Promise<{ integration: Integration; check: ConnectionReport | null; scimToken?: string }> {
    const existing: Integration = await this.get(id);
    if (existing.provider === 'scim') {
      if (options.scim !== undefined) throw new UserError('--scim applies to okta and authentik integrations: a scim integration always takes pushes');
      this.refusePullOnly(options);
      const changes = this.validate('scim', options);
      if (Object.keys(changes).length === 0) throw new UserError('nothing to update: give --deprovision or --threshold');
      await this.integrations.update(id, changes);
      return { integration: await this.get(id), check: null };
    }
    const changes: IntegrationRowUpdate = this.validate(existing.provider, options);
    let scimToken: string | undefined;
    if (options.scim === true) {
      if (existing.scimPush) throw new UserError(`integration ${id} takes SCIM pushes already: \`dirsync integration rotate-scim-token ${id}\` issues a new token`);
      scimToken = newSecret();
      changes.scim_token_hash = hashSecret(scimToken);
    } else if (options.scim === false) {
      Object.assign(changes, { scim_token_hash: null, scim_token_previous_hash: null, scim_token_previous_expires_at: null });
    }
    // Before anything reads the stored credentials or reaches out, whatever `verify` says.
    refuseCredentialRedirect(existing, changes.base_url, options);
    const newCredentials = await this.newCredentials(existing.provider, options, existing.credentialKind === 'okta-private-key' ? () => this.credentials(id) : undefined);
    if (newCredentials) Object.assign(changes, this.credentialColumns(requireEncryptionKey(this.config), id, newCredentials));
    if (Object.keys(changes).length === 0) throw new UserError('nothing to update: give at least one option, such as --token or --every');
    let check: ConnectionReport | null = null;
    const reconnects = newCredentials !== undefined || changes.base_url !== undefined || changes.okta_app_id !== undefined || changes.authentik_app !== undefined;
    if (reconnects && options.verify !== false) {
      const target = {
        id,
        provider: existing.provider,
        baseUrl: changes.base_url ?? existing.baseUrl,
        oktaAppId: changes.okta_app_id === undefined ? existing.oktaAppId : changes.okta_app_id,
        authentikApp: changes.authentik_app === undefined ? existing.authentikApp : changes.authentik_app,
      };
      check = await this.verify(target, newCredentials ?? (await this.credentials(id)));
    }
    await this.integrations.update(id, changes);
    return { integration: await this.get(id), check, ...(scimToken && { scimToken }) };
  }

  /** Reads one page from every endpoint a sync uses (`dirsync integration test`). */
  async test(id: string): Promise<IntegrationTestResult> {
    const integration = await this.pulled(id, 'has no IdP endpoints to test: the IdP pushes to it, and "Test API Credentials" in the IdP checks the SCIM endpoint and token');
    const refused = outboundRefusal(integration.baseUrl, this.config);
    if (refused) throw new UserError(`integration ${id}: ${refused}`);
    const report = await checkConnection(integration, await this.credentials(id), egressFor(this.config));
    return { id, provider: integration.provider, baseUrl: integration.baseUrl, auth: integration.credentialKind, ...report };
  }

  async setEnabled(id: string, enabled: boolean): Promise<Integration> {
    await this.get(id);
    await this.integrations.update(id, { enabled });
    return this.get(id);
  }

  /**
   * Issues a new webhook secret. The old one keeps working for `grace` (`0`, or a duration such
   * as `1h`; DIRSYNC_WEBHOOK_SECRET_GRACE when not given), so the IdP can be switched over
   * without dropping events. Only one old secret is kept: one retired by an earlier rotation
   * stops working now, even if its grace period had not ended.
   */
  async rotateWebhookSecret(id: string, grace?: string): Promise<WebhookSecretRotation> {
    const graceMs = grace === undefined ? this.config.webhookSecretGraceMs : parseGrace(grace);
    if (graceMs === undefined) throw new UserError(`--grace ${GRACE_RULE}, not "${grace}"`);
    await this.pulled(id, 'takes no webhooks: the IdP pushes over SCIM; rotate its token with `dirsync integration rotate-scim-token`');
    const secret = newSecret();
    const rotated = await this.integrations.rotateWebhookSecret(id, hashSecret(secret), graceMs);
    if (!rotated) throw new NotFoundError(`integration ${id} does not exist: \`dirsync integration list\` shows the ids`);
    return { id, webhookSecret: secret, previousWebhookSecretValidUntil: rotated.previousExpiresAt?.toISOString() ?? null };
  }

  /**
   * Issues a new SCIM bearer token for a scim integration. The old one keeps working for
   * `grace` (as for webhook secrets; DIRSYNC_WEBHOOK_SECRET_GRACE when not given), so the IdP's
   * provisioning settings can be switched over without failed pushes.
   */
  async rotateScimToken(id: string, grace?: string): Promise<ScimTokenRotation> {
    const graceMs = grace === undefined ? this.config.webhookSecretGraceMs : parseGrace(grace);
    if (graceMs === undefined) throw new UserError(`--grace ${GRACE_RULE}, not "${grace}"`);
    const integration = await this.get(id);
    if (!integration.scimPush) {
      throw new UserError(
        `integration ${id} is an ${integration.provider} integration that takes no SCIM pushes, so it has no SCIM token: rotate its webhook secret with \`dirsync integration rotate-webhook-secret\`, or take pushes with \`dirsync integration update ${id} --scim\``,
      );
    }
    const token = newSecret();
    const rotated = await this.integrations.rotateScimToken(id, hashSecret(token), graceMs);
    if (!rotated) throw new NotFoundError(`integration ${id} does not exist: \`dirsync integration list\` shows the ids`);
    return { id, scimToken: token, previousScimTokenValidUntil: rotated.previousExpiresAt?.toISOString() ?? null };
  }

  /** The integration, which must be one dirsync reads from; `scimRefusal` completes "integration X (scim) ...". */
  async pulled(id: string, scimRefusal: string): Promise<PulledIntegration> {
    const integration = await this.get(id);
    if (integration.provider === 'scim') throw new UserError(`integration ${id} is a scim integration, which ${scimRefusal}`);
    return integration;
  }

  /** Deletes the integration, its groups and run history (its accounts too with `accounts: 'delete'`); events stay (see deleteIntegration). */
  async delete(id: string, options: { accounts: 'keep' | 'delete' } = { accounts: 'keep' }): Promise<Integration> {
    const existing = await this.get(id);
    if (!(await deleteIntegration(this.db, existing, options))) throw new NotFoundError(`integration ${id} does not exist: \`dirsync integration list\` shows the ids`);
    return existing;
  }

  async get(id: string): Promise<Integration> {
    const integration = isUuid(id) ? await this.integrations.find(id) : undefined;
    if (!integration) throw new NotFoundError(`integration ${id} does not exist: \`dirsync integration list\` shows the ids`);
    return integration;
  }

  async list(tenantSlug?: string): Promise<Integration[]> {
    if (tenantSlug === undefined) return this.integrations.list();
    const tenant = await this.tenants.findBySlug(tenantSlug);
    if (!tenant) throw new NotFoundError(`tenant "${tenantSlug}" does not exist`);
    return this.integrations.list(tenant.id);
  }

  async credentials(id: string): Promise<Credentials> {
    const envelope = await this.integrations.loadCredentials(id);
    if (!envelope) throw new NotFoundError(`integration ${id} does not exist`);
    return openCredentials(requireKeyring(this.config), id, envelope);
  }

  view(integration: Integration): IntegrationView {
    const scim = { scimBaseUrl: `${this.config.publicUrl}/scim/v2/${integration.id}`, previousScimTokenValidUntil: integration.previousScimTokenValidUntil };
    const reach =
      integration.provider === 'scim'
        ? scim
        : {
            webhookUrl: `${this.config.publicUrl}/webhooks/${integration.id}`,
            previousWebhookSecretValidUntil: integration.previousWebhookSecretValidUntil,
            ...(integration.scimPush && scim),
          };
    return {
      id: integration.id,
      tenant: integration.tenantSlug,
      provider: integration.provider,
      baseUrl: integration.baseUrl,
      auth: integration.credentialKind,
      oktaClientId: integration.oktaClientId,
      oktaAppId: integration.oktaAppId,
      authentikApp: integration.authentikApp,
      deprovisionMode: integration.deprovisionMode,
      thresholdPercent: integration.thresholdPercent,
      schedule: describeSchedule(integration.schedule),
      ...(integration.provider !== 'scim' && { fullEvery: describeSchedule({ kind: 'every', ms: integration.fullEveryMs ?? DEFAULT_FULL_EVERY_MS }) }),
      enabled: integration.enabled,
      ...reach,
      createdAt: integration.createdAt,
      updatedAt: integration.updatedAt,
    };
  }

  private async verify(target: ConnectionTarget, credentials: Credentials): Promise<ConnectionReport> {
    const report = await checkConnection(target, credentials, egressFor(this.config));
    if (!report.ok) throw new VerificationError(report);
    return report;
  }

  private credentialColumns(key: Buffer, id: string, credentials: Credentials) {
    return {
      credentials: sealCredentials(key, id, credentials),
      credential_kind: credentials.kind,
      okta_client_id: credentials.kind === 'okta-private-key' ? credentials.clientId : null,
    };
  }

  /**
   * The credentials the options give, or undefined when they give none. An update may change
   * one part of a service app's credentials (a new key, a new key id): `current` reads the rest.
   */
  private async newCredentials(provider: Provider, o: IntegrationOptions, current: (() => Promise<Credentials>) | undefined): Promise<Credentials | undefined> {
    const oauth = o.oktaClientId !== undefined || o.oktaPrivateKey !== undefined || o.oktaKeyId !== undefined;
    if (o.token !== undefined) {
      if (oauth) throw new UserError('give either --token or an Okta service app (--okta-client-id, --okta-private-key-file), not both');
      if (o.token.trim() === '') throw new UserError('--token must not be empty');
      return { kind: 'token', token: o.token };
    }
    if (!oauth) return undefined;
    if (provider !== 'okta') throw new UserError('--okta-client-id, --okta-private-key-file and --okta-key-id apply only to okta integrations');
    if (o.oktaClientId !== undefined && !/^[A-Za-z0-9_-]{1,100}$/.test(o.oktaClientId)) {
      throw new UserError(`--okta-client-id "${o.oktaClientId}" is not an Okta client id (such as 0oa1b2c3d4E5F6g7h8i9)`);
    }
    const build = (clientId: string | undefined, privateKey: string | undefined, keyId: string | undefined): Credentials => {
      if (clientId === undefined || privateKey === undefined) {
        throw new UserError('an Okta service app needs both --okta-client-id and --okta-private-key-file');
      }
      const parsed = parseOktaPrivateKey(privateKey, keyId);
      return { kind: 'okta-private-key', clientId, privateKey: parsed.jwk, keyId: parsed.keyId };
    };
    const existing = o.oktaClientId === undefined || o.oktaPrivateKey === undefined ? await current?.() : undefined;
    if (existing?.kind === 'okta-private-key') {
      // A new key brings its own key id (or none); the stored one belongs to the old key.
      const keyId = o.oktaKeyId ?? (o.oktaPrivateKey === undefined ? (existing.keyId ?? undefined) : undefined);
      return build(o.oktaClientId ?? existing.clientId, o.oktaPrivateKey ?? existing.privateKey, keyId);
    }
    return build(o.oktaClientId, o.oktaPrivateKey, o.oktaKeyId);
  }

  private validate(provider: Provider, o: IntegrationOptions): IntegrationRowUpdate {
    const changes: IntegrationRowUpdate = {};
    if (o.baseUrl !== undefined) changes.base_url = this.validateBaseUrl(o.baseUrl);
    if (o.oktaAppId !== undefined) {
      if (provider !== 'okta') throw new UserError('--okta-app-id applies only to okta integrations');
      if (!/^[A-Za-z0-9]+$/.test(o.oktaAppId)) throw new UserError(`--okta-app-id "${o.oktaAppId}" is not an Okta app id (such as 0oa1b2c3d4E5F6g7h8i9)`);
      changes.okta_app_id = o.oktaAppId;
    }
    if (o.authentikApp !== undefined) {
      if (provider !== 'authentik') throw new UserError('--authentik-app applies only to authentik integrations');
      if (!/^[-a-zA-Z0-9_]+$/.test(o.authentikApp)) throw new UserError(`--authentik-app "${o.authentikApp}" is not an application slug (letters, digits, - and _)`);
      changes.authentik_app = o.authentikApp;
    }
    if (o.deprovision !== undefined) {
      if (!isDeprovisionMode(o.deprovision)) {
        throw new UserError(`--deprovision must be suspend, remove-access or delete, not "${o.deprovision}"`);
      }
      changes.deprovision_mode = o.deprovision;
    }
    if (o.threshold !== undefined) changes.threshold_percent = parseThreshold(o.threshold);
    let schedule: Schedule | undefined;
    try {
      schedule = parseSchedule({ every: o.every, cron: o.cron });
    } catch (error) {
      if (error instanceof InvalidScheduleError) throw new UserError(error.message);
      throw error;
    }
    if (schedule) {
      changes.schedule_every_ms = schedule.kind === 'every' ? schedule.ms : null;
      changes.schedule_cron = schedule.kind === 'cron' ? schedule.pattern : null;
    }
    if (o.fullEvery !== undefined) changes.full_every_ms = parseFullEvery(o.fullEvery);
    return changes;
  }

  private validateBaseUrl(text: string): string {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UserError(`--base-url "${text}" is not a URL: use the IdP's address, such as https://example.okta.com`);
    }
    if (url.protocol === 'http:' && !this.config.allowHttp) {
      throw new UserError(`--base-url ${text} uses http://, which would send the token in clear: use https://, or set DIRSYNC_ALLOW_HTTP=true for a local IdP`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UserError(`--base-url ${text} must be an https:// URL`);
    return url.origin + url.pathname.replace(/\/+$/, '');
  }
}

/**
 * Stored credentials stay with their origin (SPEC "Operator safety"): a base URL whose origin
 * (scheme, host and port, as browsers bind credentials) differs from the stored one needs a
 * whole credential in the same request, either an API token or an Okta service app's client id
 * and private key, since the next verification or run sends it there. A new path on the same
 * origin needs none. This is the one place the rule lives; the CLI, the admin API (and any
 * console form) all update through `IntegrationService.update`.
 *
 * @param existing the stored integration (its `baseUrl` is the current address)
 * @param newBaseUrl the validated new base URL, or undefined when the request keeps the address
 * @param options the request, to see which credential parts it brings
 * @throws UserError naming the option to give (worded for the CLI; the API renames it)
 */
export function refuseCredentialRedirect(existing: Pick<PulledIntegration, 'baseUrl' | 'credentialKind'>, newBaseUrl: string | null | undefined, options: IntegrationOptions): void {
  if (newBaseUrl === undefined || newBaseUrl === null) return;
  const from = new URL(existing.baseUrl).origin;
  const to = new URL(newBaseUrl).origin;
  if (from === to) return;
  const wholeCredential = options.token !== undefined || (options.oktaClientId !== undefined && options.oktaPrivateKey !== undefined);
  if (wholeCredential) return;
  const give =
    existing.credentialKind === 'okta-private-key'
      ? '--okta-client-id with --okta-private-key-file (or --token)'
      : '--token';
  throw new UserError(`--base-url moves the integration from ${from} to ${to}, and stored credentials are never sent to a new address: give ${give} in the same update`);
}

/**
 * `--threshold`: the share of the tenant (users, or memberships) a run may remove before it is
 * held, as a decimal percentage from 0.01 to 100 with at most two decimals (`5`, `2.5`, `10%`).
 * 100 means no share is too large: only the rules that hold whatever the threshold remain (an
 * empty listing, a vanished scope; SPEC "Safety"). Hex, exponents and the like are refused.
 */
export function parseThreshold(text: string): number {
  const m = /^\s*(\d{1,3}(?:\.\d{1,2})?)\s*%?\s*$/.exec(text);
  const percent = m ? Number(m[1]) : Number.NaN;
  if (!(percent >= 0.01 && percent <= 100)) {
    throw new UserError(`--threshold must be a percentage from 0.01 to 100 with at most two decimals, such as 5 or 2.5, not "${text.slice(0, 40)}"`);
  }
  return percent;
}

/**
 * `--full-every`: how often scheduled runs read the whole scope (SPEC "Run"); between them they
 * read the change feed. From 1h (a full read of a large org spends much of its rate limit) to 365d.
 */
function parseFullEvery(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text, '--full-every');
  } catch (error) {
    if (error instanceof InvalidScheduleError) throw new UserError(error.message);
    throw error;
  }
  if (ms < 3_600_000) throw new UserError(`--full-every ${text} is too frequent: the minimum is 1h (a full read costs a large org much of its rate limit)`);
  if (ms > MAX_EVERY_MS) throw new UserError(`--full-every ${text} is too long: the maximum is 365d`);
  return ms;
}
