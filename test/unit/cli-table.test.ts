import Table from 'cli-table3';
import { describe, expect, it } from 'vitest';
import { fitWidths, table } from '../../src/cli/output.js';

describe('the CLI table', () => {
  it('fits a terminal: no line wider than it, the widest column wrapping first', () => {
    const detail = JSON.stringify({ changes: { email: { previous: 'a@x.test', new: 'b@x.test' } }, changed: ['email', 'attributes'] });
    const text = table(['change', 'subject', 'state', 'detail'], [['user.updated', 'ann@x.test', 'applied', detail]], 60);
    for (const line of text.split('\n')) expect([...line].length).toBeLessThanOrEqual(60);
    expect(text).toContain('user.updated');
    expect(text.replace(/[│\s]/g, '')).toContain(detail.replace(/\s/g, ''));
  });

  it('does not wrap when piped (no width), and says (none) for no rows', () => {
    const long = 'x'.repeat(300);
    expect(table(['a'], [[long]], undefined).split('\n').some((l) => l.includes(long))).toBe(true);
    expect(table(['a'], [], 80)).toBe('(none)');
  });

  it('never narrows a column below 8', () => {
    expect(fitWidths([50, 50, 50], 10)).toEqual([8, 8, 8]);
    expect(fitWidths([10, 40], 40)).toEqual([10, 30]);
  });

  it('draws a long table in chunks exactly as one table would (cli-table3 alone slows with the square of the rows)', () => {
    for (const n of [1, 199, 200, 201, 450]) {
      const rows = Array.from({ length: n }, (_, i) => [`user${i}@example.com, a name long enough to wrap`, i % 3 === 0 ? null : `x${i}`]);
      const text = table(['userName', 'email'], rows, 40);
      const widths = text.split('\n')[0]!.slice(1, -1).split('┬').map((part) => part.length);
      const one = new Table({ head: ['userName', 'email'], colWidths: widths, wordWrap: true, wrapOnWordBoundary: false, style: { head: [], border: [], compact: true } });
      one.push(...rows.map((r) => r.map((c) => c ?? '-')));
      expect(text, `${n} rows`).toBe(one.toString());
    }
  });
});
