/**
 * An ISO 8601 time as every console page shows it: "2026-11-30 03:12:56" (UTC, to the
 * second; pages say UTC in their column headings or after the time).
 */
export function when(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}

/** Stored text with ISO 8601 times in it (a held run's reason), with each time as `when` shows it and "UTC". */
export function withConsoleTimes(text: string): string {
  return text.replace(/(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z/g, '$1 $2 UTC');
}

/** One changed field as console pages show it: its values as text (JSON but for strings), null where there was or is none. */
export interface ChangedField {
  readonly name: string;
  readonly previous: string | null;
  readonly next: string | null;
}

/**
 * A change's `changes` (`{field: {previous, new}}`) as fields to show, with the raw
 * attributes of `changes.attributes` (`{previous: {...}, new: {...}}`) one field each
 * (`attributes.costCenter`; none on the side where it is absent), not one bag of JSON.
 */
export function changeFields(changes: unknown): ChangedField[] {
  if (!changes || typeof changes !== 'object') return [];
  const text = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v));
  const pair = (v: unknown) => (v && typeof v === 'object' ? (v as { previous?: unknown; new?: unknown }) : {});
  return Object.entries(changes as Record<string, unknown>).flatMap(([name, v]): ChangedField[] => {
    const { previous, new: next } = pair(v);
    if (name === 'attributes' && next && typeof next === 'object' && !Array.isArray(next)) {
      const before = previous && typeof previous === 'object' ? (previous as Record<string, unknown>) : {};
      const after = next as Record<string, unknown>;
      // A key on one side only appeared or went: shown as none on the other.
      return [...new Set([...Object.keys(before), ...Object.keys(after)])].map((key) => ({ name: `attributes.${key}`, previous: text(before[key]), next: text(after[key]) }));
    }
    return [{ name, previous: text(previous), next: text(next) }];
  });
}
