import { canonicalJson } from './fingerprint.js';
import type { JsonObject } from './model.js';

/** The raw IdP attributes that differ between two versions of a record, as a `user.updated` event's `changes.attributes` says them. */
export interface AttributeDiff {
  /** Each differing top-level attribute as it was; one that was absent is not here. */
  readonly previous: JsonObject;
  /** Each differing top-level attribute as it is; one that is gone is not here. */
  readonly new: JsonObject;
}

/**
 * The top-level attributes whose values differ (compared as key-sorted JSON, so key order
 * inside a value never counts), or undefined when none does. A nested value that changed is
 * given whole, before and after. An attribute that appeared or went is on one side only: so an
 * attribute that became `null` where it was absent differs, as it does for the fingerprint
 * that found the record changed (src/core/fingerprint.ts).
 */
export function attributeDiff(previous: JsonObject, next: JsonObject): AttributeDiff | undefined {
  const before: JsonObject = {};
  const after: JsonObject = {};
  let differ = false;
  for (const key of new Set([...Object.keys(previous), ...Object.keys(next)])) {
    const was = previous[key];
    const is = next[key];
    if (was !== undefined && is !== undefined && canonicalJson(was) === canonicalJson(is)) continue;
    differ = true;
    if (was !== undefined) before[key] = was;
    if (is !== undefined) after[key] = is;
  }
  return differ ? { previous: before, new: after } : undefined;
}
