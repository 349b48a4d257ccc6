import { describe, expect, it } from 'vitest';
import { runStatusLabel } from '../../src/http/admin-health.js';

describe('runStatusLabel', () => {
  it('says how a settled held run ended, and keeps other statuses as they are', () => {
    expect(runStatusLabel({ status: 'succeeded', heldReason: 'the plan deprovisions 8 of 10', approvedAt: '2026-11-30T10:00:00.000Z' })).toEqual({ text: 'held → approved', css: 'succeeded', held: true });
    expect(runStatusLabel({ status: 'succeeded', heldReason: 'the plan deprovisions 8 of 10. Its removals were rejected by an admin', approvedAt: null })).toEqual({ text: 'held → rejected', css: 'held', held: true });
    expect(runStatusLabel({ status: 'held', heldReason: 'x', approvedAt: null })).toEqual({ text: 'held', css: 'held', held: true });
    expect(runStatusLabel({ status: 'succeeded', heldReason: null, approvedAt: null })).toEqual({ text: 'succeeded', css: 'succeeded', held: false });
    expect(runStatusLabel({ status: 'failed', heldReason: null, approvedAt: null })).toEqual({ text: 'failed', css: 'failed', held: false });
  });
});
