import type { Migration } from 'kysely';
import * as initial from './2026-11-25T0000-initial.js';
import * as deprovisionModes from './2026-11-25T0100-deprovision-modes.js';
import * as webhooks from './2026-11-25T0200-webhooks.js';
import * as memberVersions from './2026-11-25T0300-member-versions.js';
import * as webhookSecretGrace from './2026-11-25T0400-webhook-secret-grace.js';
import * as credentialKind from './2026-11-25T0500-credential-kind.js';
import * as accounts from './2026-11-29T0000-accounts.js';
import * as scim from './2026-11-30T0000-scim.js';
import * as scimUnapplied from './2026-11-30T0100-scim-unapplied.js';
import * as events from './2026-11-30T0200-events.js';
import * as endpoints from './2026-11-30T0300-endpoints.js';
import * as eventsOutliveRuns from './2026-11-30T0400-events-outlive-runs.js';
import * as subjectHistory from './2026-11-30T0500-subject-history.js';
import * as metricCounters from './2026-11-30T0600-metric-counters.js';
import * as webhookRejections from './2026-11-30T0700-webhook-rejections.js';
import * as retentionIndexes from './2026-11-30T0850-retention-indexes.js';
import * as apiTokensAudit from './2026-11-30T0900-api-tokens-audit.js';
import * as targetedRuns from './2026-11-30T1000-targeted-runs.js';
import * as stagedReads from './2026-12-01T0000-staged-reads.js';
import * as membershipReferences from './2026-12-02T0000-membership-references.js';

/**
 * Every migration, by name (names sort in the order they apply). Listed statically rather
 * than read from the folder so the same code runs compiled and under vitest.
 */
export const migrations: Record<string, Migration> = {
  '2026-11-25T0000-initial': initial,
  '2026-11-25T0100-deprovision-modes': deprovisionModes,
  '2026-11-25T0200-webhooks': webhooks,
  '2026-11-25T0300-member-versions': memberVersions,
  '2026-11-25T0400-webhook-secret-grace': webhookSecretGrace,
  '2026-11-25T0500-credential-kind': credentialKind,
  '2026-11-29T0000-accounts': accounts,
  '2026-11-30T0000-scim': scim,
  '2026-11-30T0100-scim-unapplied': scimUnapplied,
  '2026-11-30T0200-events': events,
  '2026-11-30T0300-endpoints': endpoints,
  '2026-11-30T0400-events-outlive-runs': eventsOutliveRuns,
  '2026-11-30T0500-subject-history': subjectHistory,
  '2026-11-30T0600-metric-counters': metricCounters,
  '2026-11-30T0700-webhook-rejections': webhookRejections,
  '2026-11-30T0850-retention-indexes': retentionIndexes,
  '2026-11-30T0900-api-tokens-audit': apiTokensAudit,
  '2026-11-30T1000-targeted-runs': targetedRuns,
  '2026-12-01T0000-staged-reads': stagedReads,
  '2026-12-02T0000-membership-references': membershipReferences,
};
