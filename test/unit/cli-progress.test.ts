import { describe, expect, it } from 'vitest';
import { canShowProgress } from '../../src/cli/sync.command.js';

// A spinner on a pseudo-terminal of no size made ora 9.4 redraw forever (Infinity lines to
// clear): `sync --wait` under `script -c` wrote 1.5 GB of escape codes in ten minutes and never
// returned. The spinner is drawn only on a terminal with a width.
describe('sync --wait progress', () => {
  it('is drawn on a terminal with a width only', () => {
    expect(canShowProgress({ isTTY: true, columns: 120 })).toBe(true);
    expect(canShowProgress({ isTTY: true, columns: 0 })).toBe(false);
    expect(canShowProgress({ isTTY: true })).toBe(false);
    expect(canShowProgress({ isTTY: false, columns: 80 })).toBe(false);
    expect(canShowProgress({})).toBe(false);
  });
});
