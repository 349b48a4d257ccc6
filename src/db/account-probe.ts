import { type RawBuilder, sql } from 'kysely';

/**
 * The integration's account with this IdP id, as a subquery to join LATERAL (`cross join
 * lateral ${accountByIdpId(...)} a`, or `left join lateral ... a on true`): `columns` of
 * accounts `a`, at most one row (the key is unique: accounts_integration_external_key).
 *
 * Why a probe and not a join: a batch names a few thousand accounts, and joined plainly the
 * planner hashes every account of the integration for each batch whenever that looks cheaper
 * than probing the index (it did up to about 60,000 accounts in the W100k bench, a third of an
 * initial sync's membership time). `LIMIT 1` keeps the LATERAL from being flattened back into
 * such a join, so each row is one index probe whatever the statistics say.
 *
 * `lock: 'key share'` locks the account found until the transaction ends, as a foreign key to
 * it would: its delete waits, and an account deleted meanwhile is not found.
 */
export function accountByIdpId(integrationId: string, externalId: RawBuilder<unknown>, columns: string, options: { lock?: 'key share' } = {}) {
  // `key share`: the row lock a foreign key to the account takes (see addMemberships).
  const lock = options.lock ? sql` for key share` : sql``;
  return sql`(select ${sql.raw(columns)} from accounts a
    where a.integration_id = ${integrationId}::uuid and a.external_id = ${externalId} limit 1${lock})`;
}

/**
 * For an UPDATE or DELETE of the accounts a batch names (`a`, joined to a CTE `input` by
 * external_id): the same rows, said so that they are fetched through the (integration, IdP
 * id) index. A target cannot be a LATERAL probe (accountByIdpId), and a plain join lets the
 * planner hash every account of the integration; a key list from a subquery is taken for a
 * few rows, so the index is used whatever the statistics say. Adds no condition: each target
 * matched `input` already.
 */
export const INPUT_TARGETS = sql<boolean>`a.external_id = any(array(select external_id from input))`;
