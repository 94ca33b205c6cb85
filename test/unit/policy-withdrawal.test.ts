import { describe, expect, it } from 'vitest';
import { LOCAL_OPERATOR, type ConsentRecord } from '../../src/policy/consent-ledger.js';
import { actorKindOf, DEFAULT_HELD_DAYS, destroyingWithdrawal, isHeld, UNSIGNED_ACTOR, withdrawalState } from '../../src/policy/withdrawal.js';

const KEY = 'abcdefghijklmnop';
const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function rec(seq: number, kind: 'grant' | 'withdraw', actor: string, days = 0): ConsentRecord {
  return { seq, at: new Date(T0 + days * DAY).toISOString(), actor, kind, consent: 'faceRecognition', policyVersion: '2021-10-31', requestDigest: 'a'.repeat(64) };
}

describe('unsigned means stop, never destroy (withdrawal.ts)', () => {
  it('knows who an actor is; anything it cannot place is unsigned', () => {
    expect(actorKindOf(LOCAL_OPERATOR)).toBe('console');
    expect(actorKindOf(UNSIGNED_ACTOR)).toBe('unsigned');
    expect(actorKindOf(KEY)).toBe('paired-key');
    expect(actorKindOf('nobody-at-all')).toBe('unsigned');
  });

  it('an unsigned withdrawal stops; a signed or console one after it withdraws; a grant resumes', () => {
    const grant = rec(1, 'grant', LOCAL_OPERATOR);
    const unsigned = rec(2, 'withdraw', UNSIGNED_ACTOR);
    expect(withdrawalState([], 'faceRecognition')).toEqual({ kind: 'never' });
    expect(withdrawalState([grant], 'faceRecognition')).toEqual({ kind: 'granted' });
    expect(withdrawalState([grant, unsigned], 'faceRecognition')).toEqual({ kind: 'stopped', since: unsigned });
    expect(withdrawalState([grant, unsigned, rec(3, 'withdraw', UNSIGNED_ACTOR)], 'faceRecognition')).toEqual({ kind: 'stopped', since: unsigned });
    const signed = rec(3, 'withdraw', KEY);
    expect(withdrawalState([grant, unsigned, signed], 'faceRecognition')).toEqual({ kind: 'withdrawn', record: signed });
    expect(withdrawalState([grant, rec(2, 'withdraw', LOCAL_OPERATOR)], 'faceRecognition').kind).toBe('withdrawn');
    expect(withdrawalState([grant, unsigned, rec(3, 'grant', KEY)], 'faceRecognition')).toEqual({ kind: 'granted' });
    // A signed withdrawal before the last grant does not count for a later unsigned stop.
    expect(withdrawalState([grant, signed, rec(4, 'grant', KEY), rec(5, 'withdraw', UNSIGNED_ACTOR)], 'faceRecognition').kind).toBe('stopped');
    // Never granted: an unsigned withdrawal still destroys nothing.
    expect(withdrawalState([unsigned], 'faceRecognition').kind).toBe('stopped');
  });

  it('held is not kept forever: past the region template retention (or the default) the stop destroys', () => {
    const records = [rec(1, 'grant', LOCAL_OPERATOR), rec(2, 'withdraw', UNSIGNED_ACTOR, 10)];
    const at = (days: number) => new Date(T0 + days * DAY);
    expect(destroyingWithdrawal(records, 'faceRecognition', { maxDays: 365, now: at(374) })).toBeUndefined();
    expect(isHeld(records, 'faceRecognition', { maxDays: 365, now: at(374) })).toBe(true);
    expect(destroyingWithdrawal(records, 'faceRecognition', { maxDays: 365, now: at(375) })?.seq).toBe(2);
    expect(isHeld(records, 'faceRecognition', { maxDays: 365, now: at(375) })).toBe(false);
    expect(destroyingWithdrawal(records, 'faceRecognition', { maxDays: 0, now: at(10) })?.seq).toBe(2);
    expect(destroyingWithdrawal(records, 'faceRecognition', { maxDays: null, now: at(10 + DEFAULT_HELD_DAYS - 1) })).toBeUndefined();
    expect(destroyingWithdrawal(records, 'faceRecognition', { now: at(10 + DEFAULT_HELD_DAYS) })?.seq).toBe(2);
  });
});
