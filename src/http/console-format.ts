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
