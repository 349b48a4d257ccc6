import { createHash } from 'node:crypto';
import type { JsonValue } from './model.js';

/** JSON with object keys sorted at every depth, so equal data always serializes equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * Stable hash of key-sorted data: the planner compares fingerprints instead of whole
 * attribute bags, so a local row only needs 27 bytes to know whether it is up to date.
 */
export function fingerprint(value: unknown): string {
  return createHash('sha1').update(canonicalJson(value)).digest('base64url');
}

/** Deep-copies IdP data into plain JSON (Dates become ISO strings, undefined is dropped). */
export function toJson(value: unknown): JsonValue {
  return JSON.parse(canonicalJson(value ?? null)) as JsonValue;
}
