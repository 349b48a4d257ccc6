import { DecryptionError, type Keyring, decrypt, encrypt, isUnderCurrentKey } from '../crypto.js';
import type { Db } from '../db/database.js';
import { IntegrationRepository } from '../db/integration.repository.js';

/** What re-encryption did to one integration; `gone` means it was deleted meanwhile. */
export type ReencryptOutcome =
  | { readonly kind: 'reencrypted' }
  | { readonly kind: 'already-current' }
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'gone' };

/** What could not be re-encrypted: an integration's credentials or an event endpoint's signing secrets. */
export type ReencryptFailure = { readonly integrationId: string; readonly reason: string } | { readonly endpointId: string; readonly reason: string };

export interface ReencryptReport {
  readonly reencrypted: number;
  readonly alreadyCurrent: number;
  readonly failed: number;
  readonly failures: readonly ReencryptFailure[];
}

export interface ReencryptOptions {
  /** Called after each integration's transaction has committed; tests throw here to interrupt. */
  readonly afterIntegration?: (integrationId: string, outcome: ReencryptOutcome) => Promise<void> | void;
}

/**
 * Seals every integration's credentials, and every event endpoint's signing secrets, under
 * the keyring's current key. Each integration is
 * one short transaction (lock the row; skip it if already under the current key; else decrypt
 * with whichever key its envelope names and seal again), so an interrupted pass loses nothing
 * and running it again finishes the job. Credentials stay opaque: the decrypted text is sealed
 * again as it is, whatever kind of credentials it holds. Credentials that no key of the
 * keyring opens are reported in `failures`; anything else (Postgres gone) is thrown.
 *
 * @example
 * const report = await reencryptCredentials(db, requireKeyring(config));
 * // { reencrypted: 3, alreadyCurrent: 1, failed: 0, failures: [] }
 */
export async function reencryptCredentials(db: Db, keys: Keyring, options: ReencryptOptions = {}): Promise<ReencryptReport> {
  let reencrypted = 0;
  let alreadyCurrent = 0;
  const failures: ReencryptFailure[] = [];
  for (const id of await new IntegrationRepository(db).listIds()) {
    const outcome = await db.transaction().execute(async (trx): Promise<ReencryptOutcome> => {
      const integrations = new IntegrationRepository(trx);
      const envelope = await integrations.lockCredentials(id);
      if (!envelope) return { kind: 'gone' };
      if (isUnderCurrentKey(keys, envelope)) return { kind: 'already-current' };
      let plaintext: string;
      try {
        plaintext = decrypt(keys, envelope, id);
      } catch (error) {
        if (error instanceof DecryptionError) return { kind: 'failed', reason: error.message };
        throw error;
      }
      await integrations.replaceCredentials(id, encrypt(keys.current, plaintext, id));
      return { kind: 'reencrypted' };
    });
    if (outcome.kind === 'reencrypted') reencrypted++;
    else if (outcome.kind === 'already-current') alreadyCurrent++;
    else if (outcome.kind === 'failed') failures.push({ integrationId: id, reason: outcome.reason });
    await options.afterIntegration?.(id, outcome);
  }
  // Event endpoints' signing secrets are sealed with the same key (EndpointService), each bound to its endpoint.
  for (const { id } of await db.selectFrom('event_endpoints').select('id').execute()) {
    const outcome = await db.transaction().execute(async (trx): Promise<ReencryptOutcome> => {
      const row = await trx.selectFrom('event_endpoints').select(['secret', 'previous_secret']).where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) return { kind: 'gone' };
      const sealed = [row.secret, row.previous_secret].filter((e): e is Buffer => e !== null);
      if (sealed.every((e) => isUnderCurrentKey(keys, e))) return { kind: 'already-current' };
      const context = `endpoint:${id}`;
      let opened: string[];
      try {
        opened = sealed.map((e) => decrypt(keys, e, context));
      } catch (error) {
        if (error instanceof DecryptionError) return { kind: 'failed', reason: error.message.replace('stored credentials', 'the stored signing secret') };
        throw error;
      }
      await trx
        .updateTable('event_endpoints')
        .set({ secret: encrypt(keys.current, opened[0]!, context), ...(opened[1] !== undefined && { previous_secret: encrypt(keys.current, opened[1], context) }) })
        .where('id', '=', id)
        .execute();
      return { kind: 'reencrypted' };
    });
    if (outcome.kind === 'reencrypted') reencrypted++;
    else if (outcome.kind === 'already-current') alreadyCurrent++;
    else if (outcome.kind === 'failed') failures.push({ endpointId: id, reason: outcome.reason });
  }
  return { reencrypted, alreadyCurrent, failed: failures.length, failures };
}
