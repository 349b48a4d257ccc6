import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { JsonObject } from '../core/model.js';
import type { DeprovisionMode } from '../core/policy.js';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T> = ColumnType<T, string, string>;
type NullableJson<T> = ColumnType<T | null, string | null | undefined, string | null>;

/** Where an integration's directory comes from: read from Okta or authentik, or pushed over SCIM. */
export type Provider = 'okta' | 'authentik' | 'scim';
/** The providers dirsync reads (pulls) from. */
export type PulledProvider = Exclude<Provider, 'scim'>;
/** How an integration authenticates (the credentials themselves are sealed in `credentials`). */
export type CredentialKind = 'token' | 'okta-private-key';
export type RunTrigger = 'schedule' | 'webhook' | 'manual' | 'scim';
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'held';
/**
 * What a run reads (SPEC "Run"): the whole scope, what the IdP's change feed names, or named
 * users and groups (for a scim integration: the resources pushed since they were last applied).
 */
export type RunMode = 'full' | 'incremental' | 'targeted';
export type RunLane = 'full' | 'quick';

export interface TenantsTable {
  id: Generated<string>;
  slug: string;
  name: string;
  created_at: Generated<Date>;
}

export interface IntegrationsTable {
  id: string;
  tenant_id: string;
  provider: Provider;
  /** The IdP's address; null for a scim integration, which the IdP reaches instead. */
  base_url: string | null;
  /** Sealed credentials for reading the IdP; null for a scim integration. */
  credentials: Buffer | null;
  okta_app_id: string | null;
  authentik_app: string | null;
  deprovision_mode: ColumnType<DeprovisionMode, DeprovisionMode | undefined, DeprovisionMode>;
  threshold_percent: number | null;
  // bigint comes back from pg as a string; the repository converts it.
  schedule_every_ms: ColumnType<string | null, number | null, number | null>;
  schedule_cron: string | null;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  webhook_secret_hash: string;
  credential_kind: ColumnType<CredentialKind, CredentialKind | undefined, CredentialKind>;
  okta_client_id: string | null;
  /** The secret the last rotation retired, accepted until its expiry (as of the database's clock). */
  webhook_secret_previous_hash: string | null;
  webhook_secret_previous_expires_at: NullableTimestamp;
  /** scim only: SHA-256 of the bearer token the IdP presents, and the rotated-out one during its grace. */
  scim_token_hash: string | null;
  scim_token_previous_hash: string | null;
  scim_token_previous_expires_at: NullableTimestamp;
  /** How often the schedule runs a full run rather than an incremental one; null: DEFAULT_FULL_EVERY_MS. */
  full_every_ms: ColumnType<string | null, number | null, number | null>;
  /** Where the IdP's change feed is read from next (opaque to all but the connector). */
  feed_cursor: string | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

export interface UsersTable {
  id: Generated<string>;
  user_name: string;
  user_name_key: ColumnType<string, never, never>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

/**
 * A tenant account: the user as one tenant sees them, owned by one IdP identity (integration,
 * IdP id) and holding that IdP's attributes (SPEC "Identity: accounts and people"). Unowned
 * (integration_id null) when created outside dirsync or left by a deleted integration.
 */
export interface AccountsTable {
  id: Generated<string>;
  tenant_id: string;
  /** The person (global user) of this account's normalized userName. */
  user_id: string;
  integration_id: string | null;
  external_id: string | null;
  user_name: string;
  user_name_key: ColumnType<string, never, never>;
  email: string | null;
  given_name: string | null;
  family_name: string | null;
  display_name: string | null;
  active: boolean;
  idp_status: string;
  attributes: Json<JsonObject>;
  fingerprint: string;
  deprovisioned_at: NullableTimestamp;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

export interface GroupsTable {
  id: Generated<string>;
  tenant_id: string;
  integration_id: string;
  external_id: string;
  name: string;
  description: string | null;
  attributes: Json<JsonObject>;
  fingerprint: string;
  members_version: string | null;
  members_read_at: NullableTimestamp;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

export interface GroupMembershipsTable {
  group_id: string;
  account_id: string;
  created_at: Generated<Date>;
}

/** One per deprovisioned IdP identity: the host app ends that person's sessions in that tenant. */
export interface LocksTable {
  id: Generated<string>;
  tenant_id: string;
  /** The person; kept after delete mode removed them, so sessions can still be ended. */
  user_id: string;
  /** The account while it exists (remove-access and delete remove it; the lock stays). */
  account_id: string | null;
  integration_id: string | null;
  external_id: string | null;
  user_name: string | null;
  reason: string;
  run_id: string | null;
  created_at: Generated<Date>;
}

export interface RunsTable {
  id: string;
  integration_id: string;
  trigger: RunTrigger;
  mode: ColumnType<RunMode, RunMode | undefined, RunMode>;
  /** `quick` (targeted, incremental) runs go alongside `full` ones: one queued and one running of each per integration. */
  lane: ColumnType<RunLane, RunLane | undefined, RunLane>;
  /** When this run's IdP read began (database clock), declared before it loads the tenant's state. */
  read_at: NullableTimestamp;
  status: RunStatus;
  dry_run: ColumnType<boolean, boolean | undefined, boolean>;
  queued_at: Generated<Date>;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  heartbeat_at: NullableTimestamp;
  attempts: Generated<number>;
  counts: NullableJson<Record<string, number>>;
  stats: NullableJson<Record<string, number>>;
  error: string | null;
  /** Set on an approval run: the held run whose removals it applies. */
  approves_run_id: string | null;
  approved_at: NullableTimestamp;
  approved_by_run_id: string | null;
  /** Why a held run's destructive operations wait for approval. */
  held_reason: string | null;
  /** Records the run skipped (SPEC "Per-record isolation"). */
  warnings: ColumnType<RunWarning[], string | undefined, string>;
}

/** A record a run skipped, and why: `{"externalId","subject","reason"}` of the run summary. */
export interface RunWarning {
  readonly externalId: string | null;
  readonly subject: string;
  readonly reason: string;
}

/** What became of one change-log row: applied, planned (dry run), held for approval, or skipped. */
export type ChangeState = 'applied' | 'planned' | 'held' | 'skipped';

export interface RunChangesTable {
  id: Generated<string>;
  /** Null for a change no run made (an integration's deletion); a deleted run's id stays on its events. */
  run_id: string | null;
  kind: string;
  external_id: string;
  subject: string;
  detail: NullableJson<JsonObject>;
  state: ChangeState;
  created_at: Generated<Date>;
  /** Set on applied changes (events): whose they are. */
  tenant_id: string | null;
  integration_id: string | null;
  /** The writing transaction's id (xid8, as a decimal string): the feed's order with `id`. */
  txid: ColumnType<string | null, never, never>;
}

export type WebhookOutcome = 'triggered' | 'ignored' | 'duplicate' | 'rejected';

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  integration_id: string;
  received_at: Generated<Date>;
  source: Provider;
  event_types: string[];
  event_ids: string[];
  outcome: WebhookOutcome;
  run_id: string | null;
  detail: string | null;
}

/** A Prometheus counter's share (one of a few shards) of one label set; written by triggers only. */
export interface MetricCountersTable {
  name: string;
  labels: Record<string, string>;
  shard: number;
  // bigint comes back from pg as a string.
  value: ColumnType<string, never, never>;
}

export interface WebhookEventsTable {
  integration_id: string;
  event_id: string;
  received_at: Generated<Date>;
}

/**
 * A SCIM User resource as the IdP pushed it (RFC 7643 §4.1): `resource` holds every attribute
 * the client sent except `id`, `meta` and `password`; the columns repeat what is searched on.
 */
export interface ScimUsersTable {
  id: Generated<string>;
  integration_id: string;
  user_name: string;
  user_name_key: ColumnType<string, never, never>;
  external_id: string | null;
  active: boolean;
  resource: Json<JsonObject>;
  /** The fingerprint the account of this user has once applied (null when the record cannot be taken): runs compare it instead of re-mapping the resource. */
  fingerprint: string | null;
  version: ColumnType<string, never, never>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** A SCIM Group resource as pushed (RFC 7643 §4.2), members apart in scim_group_members. */
export interface ScimGroupsTable {
  id: Generated<string>;
  integration_id: string;
  display_name: string;
  external_id: string | null;
  resource: Json<JsonObject>;
  version: ColumnType<string, never, never>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/**
 * A pushed resource written since a run last applied it: one row per write, added by triggers
 * on scim_users and scim_groups (migration 2026-11-30T0100-scim-unapplied).
 */
export interface ScimUnappliedTable {
  seq: ColumnType<string, never, never>;
  integration_id: string;
  resource_type: 'User' | 'Group' | 'Member';
  /** The user or group; for a membership, the group. */
  resource_id: string;
  /** For a membership, the member (a user). */
  member_id: string | null;
}

export interface ScimGroupMembersTable {
  group_id: string;
  user_id: string;
}

/** A host-app endpoint events are delivered to (migration 2026-11-30T0300-endpoints). */
export interface EventEndpointsTable {
  id: Generated<string>;
  url: string;
  /** Only this tenant's events; null: every tenant's. */
  tenant_id: string | null;
  /** Only these event types; null: every type. */
  types: string[] | null;
  /** The signing secret (`whsec_...`), sealed with the encryption key. */
  secret: Buffer;
  previous_secret: Buffer | null;
  previous_secret_expires_at: NullableTimestamp;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  disabled_reason: string | null;
  /** Delivered through this feed position (xid8 as a decimal string, and the row id). */
  cursor_txid: string;
  cursor_id: ColumnType<string, string | number, string | number>;
  failing_since: NullableTimestamp;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type DeliveryStatus = 'retrying' | 'delivered' | 'failed';

/** One event sent (or being retried) to one endpoint. */
export interface EventDeliveriesTable {
  id: Generated<string>;
  endpoint_id: string;
  event_id: ColumnType<string, string | number, string | number>;
  event_cursor: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  response_excerpt: string | null;
  next_attempt_at: NullableTimestamp;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** What a token may do (SPEC /api/v1): viewer reads, operator also syncs and approves, admin also manages. */
export type Role = 'viewer' | 'operator' | 'admin';

export interface ApiTokensTable {
  id: Generated<string>;
  name: string;
  role: Role;
  /** The one tenant the token sees, or null for every tenant. */
  tenant_id: string | null;
  /** SHA-256 (hex) of the token's text; the text itself is never stored. */
  token_hash: string;
  created_at: Generated<Date>;
  created_by: string;
  revoked_at: NullableTimestamp;
}

/** An admin action's outcome: done, refused (role or tenant scope), or failed (bad input, an error). */
export type AuditOutcome = 'ok' | 'refused' | 'failed';

/** Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE); no foreign keys, so nothing cascades into it. */
export interface AuditLogTable {
  id: Generated<string>;
  at: Generated<Date>;
  /** Who: `token <name>`, `bootstrap admin` (DIRSYNC_ADMIN_TOKEN) or `cli <os user>`. */
  actor: string;
  token_id: string | null;
  role: Role | null;
  /** The tenant the actor's token is scoped to, if any. */
  actor_tenant_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  /** The tenant the target belongs to, when it belongs to one (a scoped admin reads these rows). */
  tenant_id: string | null;
  /** The client's address, or `local` for the CLI. */
  source: string;
  outcome: AuditOutcome;
  reason: string | null;
  detail: NullableJson<JsonObject>;
}

/** What a targeted run reads: IdP user ids, logins to resolve, IdP group ids. */
export type RunSubjectKind = 'user' | 'login' | 'group';

export interface RunSubjectsTable {
  run_id: string;
  kind: RunSubjectKind;
  name: string;
}

/** When a run's read of one subject (or of all: a full read) ended (src/runs/read-stamps.ts). */
export interface SubjectReadsTable {
  integration_id: string;
  kind: 'user' | 'group' | 'all';
  external_id: string;
  run_id: string;
  read_at: Date;
}

export interface Database {
  tenants: TenantsTable;
  integrations: IntegrationsTable;
  users: UsersTable;
  accounts: AccountsTable;
  groups: GroupsTable;
  group_memberships: GroupMembershipsTable;
  locks: LocksTable;
  runs: RunsTable;
  run_changes: RunChangesTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_events: WebhookEventsTable;
  metric_counters: MetricCountersTable;
  scim_users: ScimUsersTable;
  scim_groups: ScimGroupsTable;
  scim_group_members: ScimGroupMembersTable;
  scim_unapplied: ScimUnappliedTable;
  event_endpoints: EventEndpointsTable;
  event_deliveries: EventDeliveriesTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
  run_subjects: RunSubjectsTable;
  subject_reads: SubjectReadsTable;
}

export type TenantRow = Selectable<TenantsTable>;
export type IntegrationRow = Selectable<IntegrationsTable>;
export type NewIntegrationRow = Insertable<IntegrationsTable>;
export type IntegrationRowUpdate = Updateable<IntegrationsTable>;
export type RunRow = Selectable<RunsTable>;
export type RunChangeRow = Selectable<RunChangesTable>;
