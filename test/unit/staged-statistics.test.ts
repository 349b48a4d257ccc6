import { describe, expect, it } from 'vitest';
import { STATISTICS_REFRESH, statisticsDue } from '../../src/runs/staged-run.js';

describe('statistics refreshed by a staged run (statisticsDue)', () => {
  const { min, growth } = STATISTICS_REFRESH;

  it('refreshes once enough has applied, then each time the rows have grown fourfold', () => {
    expect(statisticsDue(min - 1, 0)).toBe(false);
    expect(statisticsDue(min, 0)).toBe(true);
    expect(statisticsDue(min * growth - 1, min)).toBe(false);
    expect(statisticsDue(min * growth, min)).toBe(true);
  });

  it('refreshes a handful of times in a W1M initial sync (6M changes, the first chunk 35k), not once per chunk', () => {
    let at = 0;
    let refreshes = 0;
    for (let applied = 35_000; applied <= 6_000_000; applied += 15_000) if (statisticsDue(applied, at)) (at = applied), refreshes++;
    expect(refreshes).toBe(4);
  });

  it('does not refresh a run that changes little of a large tenant', () => {
    // A daily full run of a 1M-user tenant (6M rows) applying 40,000 changes.
    expect(statisticsDue(40_000, 0, 6_000_000)).toBe(false);
    // A tenant of 1,000 rows taking 20,000 new users is mostly new: refreshed.
    expect(statisticsDue(20_000, 0, 1_000)).toBe(true);
  });
});
