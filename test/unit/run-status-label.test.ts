import { describe, expect, it } from 'vitest';
import { readableHeldReason, runStatusLabel } from '../../src/runs/run-status.js';

describe('runStatusLabel', () => {
  it('says how a settled held run ended, and keeps other statuses as they are', () => {
    expect(runStatusLabel({ status: 'succeeded', heldReason: 'the plan deprovisions 8 of 10', approvedAt: '2026-11-30T10:00:00.000Z' })).toEqual({ text: 'held → approved', css: 'succeeded', held: true });
    expect(runStatusLabel({ status: 'succeeded', heldReason: 'the plan deprovisions 8 of 10. Its removals were rejected by an admin', approvedAt: null })).toEqual({ text: 'held → rejected', css: 'held', held: true });
    expect(runStatusLabel({ status: 'held', heldReason: 'x', approvedAt: null })).toEqual({ text: 'held', css: 'held', held: true });
    expect(runStatusLabel({ status: 'succeeded', heldReason: null, approvedAt: null })).toEqual({ text: 'succeeded', css: 'succeeded', held: false });
    expect(runStatusLabel({ status: 'failed', heldReason: null, approvedAt: null })).toEqual({ text: 'failed', css: 'failed', held: false });
  });
});

describe('readableHeldReason', () => {
  it('drops the CLI hint (and the empty parentheses older rewrites left) and speaks of a settled run in the past', () => {
    const reason = '96 removals wait for approval (`dirsync run approve 8224`): the plan deprovisions 43 of the tenant\'s 451 active users';
    expect(readableHeldReason({ status: 'held', heldReason: reason })).toBe("96 removals wait for approval: the plan deprovisions 43 of the tenant's 451 active users");
    expect(readableHeldReason({ status: 'succeeded', heldReason: '96 removals wait for approval (): the plan deprovisions 43. Its removals were rejected by an admin at 2026-11-30T10:00:00.000Z.' })).toBe(
      '96 removals waited for approval: the plan deprovisions 43. Its removals were rejected by an admin at 2026-11-30T10:00:00.000Z.',
    );
    expect(readableHeldReason({ status: 'succeeded', heldReason: null })).toBeNull();
  });
});
