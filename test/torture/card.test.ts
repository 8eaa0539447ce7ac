import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CardData, verdict } from './card.js';

/** The parts of a run's data the verdict reads, all clean unless overridden. */
function run(overrides: Partial<Record<keyof CardData, unknown>> = {}): CardData {
  return {
    badReads: [],
    harnessError: undefined,
    check: { lost: [], unreadable: [] },
    stats: { wipes: [], probes: { crashed: 0 }, findings: [] },
    crashes: [],
    convergence: { converged: true, ms: 1000, detail: '' },
    replicas: { differing: 0, examples: [], scanErrors: [] },
    ...overrides,
  } as unknown as CardData;
}

describe('torture verdict', () => {
  it('passes a clean run, and one whose replica comparison was skipped', () => {
    assert.deepEqual(verdict(run()).reasons, []);
    assert.equal(verdict(run({ replicas: 'skipped: the run broke off' })).pass, true);
  });

  it('fails a cluster that did not converge once healed', () => {
    const v = verdict(
      run({ convergence: { converged: false, ms: 120_000, detail: '3 keys missing on node 2' } }),
    );
    assert.equal(v.pass, false);
    assert.deepEqual(v.reasons, ['did not converge: 3 keys missing on node 2']);
  });

  it("fails keys whose copies differ between the nodes' own stores", () => {
    const v = verdict(run({ replicas: { differing: 2, examples: ['k1', 'k2'], scanErrors: [] } }));
    assert.equal(v.pass, false);
    assert.deepEqual(v.reasons, ["2 keys differ between the nodes' own copies"]);
  });

  it('fails a lost write', () => {
    const v = verdict(run({ check: { lost: ['k'], unreadable: [] } }));
    assert.deepEqual(v.reasons, ['1 acknowledged writes lost']);
  });
});
