import { canonicalJson } from './fingerprint.js';
import type { JsonObject } from './model.js';

/** The raw IdP attributes that differ between two versions of a record, as a `user.updated` event's `changes.attributes` says them. */
export interface AttributeDiff {
  /** Each differing top-level attribute as it was; null for one that was absent. */
  readonly previous: JsonObject;
  /** Each differing top-level attribute as it is; null for one that is gone. */
  readonly new: JsonObject;
}

/**
 * The top-level attributes whose values differ (compared as key-sorted JSON, so key order
 * inside a value never counts), or undefined when none does. A nested value that changed is
 * given whole, before and after.
 */
export function attributeDiff(previous: JsonObject, next: JsonObject): AttributeDiff | undefined {
  const before: JsonObject = {};
  const after: JsonObject = {};
  for (const key of new Set([...Object.keys(previous), ...Object.keys(next)])) {
    const was = previous[key] ?? null;
    const is = next[key] ?? null;
    if (canonicalJson(was) === canonicalJson(is)) continue;
    before[key] = was;
    after[key] = is;
  }
  return Object.keys(after).length === 0 ? undefined : { previous: before, new: after };
}
