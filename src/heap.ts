import v8 from 'node:v8';

/**
 * How far V8 lets the heap grow past the live data of its last full collection before the next
 * one, in percent: the next full collection comes when the heap reaches (1 + this / 100) times
 * what survived the last.
 *
 * Left to itself, V8 grows the old generation up to 4 times the live data while the process
 * allocates fast (v8/src/heap/heap-controller.cc, MemoryController::GrowingFactor), and a run
 * allocates fast: every page it reads and every batch it writes is garbage a moment later, but
 * enough of it outlives two scavenges (pages waiting for Postgres) to be promoted. A W100k
 * initial sync keeps about 80 MB alive, yet its heap reached 270 MB between full collections
 * and the process peaked at 365 MB RSS; at 50% it peaks at 256 MB, no slower (medians of three
 * pairs run in turn, `npm run bench`, 2026-12-02). The price is more full collections of a
 * small heap, which V8 marks mostly on its background threads.
 */
export const HEAP_GROWING_PERCENT = 50;

/**
 * Applies HEAP_GROWING_PERCENT to this process (every isolate: worker threads started later
 * too). V8 reads the flag whenever it sets the next collection's limit, so it may be set after
 * start-up (`--heap-growing-percent` is not one of the V8 flags NODE_OPTIONS accepts). An
 * explicit `--heap-growing-percent` on Node's command line wins.
 */
export function boundHeapGrowth(percent = HEAP_GROWING_PERCENT): void {
  if (process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) return;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
