/**
 * Seeds for property tests (fast-check). Every fc.assert gets its parameters
 * from propertyParams(), which draws a fresh random seed for each run of the
 * tests, so the cases differ from one run to the next instead of repeating
 * one fixed set forever:
 *
 *   fc.assert(fc.property(arb, (x) => ...), propertyParams({ numRuns: 300 }));
 *
 * On failure the error names the seed (and fast-check's shrink path) and how
 * to replay it:
 *
 *   RINGKV_PROPERTY_SEED=-1234567 node --test --test-name-pattern="<test name>" dist/<file>.test.js
 *
 * RINGKV_PROPERTY_SEED gives every property that seed, so the failing one
 * generates the same cases again. Run counts stay as each test sets them.
 */
import fc from 'fast-check';

export const PROPERTY_SEED_ENV = 'RINGKV_PROPERTY_SEED';

/** RINGKV_PROPERTY_SEED when set (an integer), otherwise a random 32-bit seed. */
export function propertySeed(): number {
  const fixed = process.env[PROPERTY_SEED_ENV]?.trim();
  if (fixed === undefined || fixed === '') return (Math.random() * 0x1_0000_0000) | 0;
  const seed = Number(fixed);
  if (!/^-?\d+$/.test(fixed) || !Number.isSafeInteger(seed)) {
    throw new Error(`${PROPERTY_SEED_ENV} must be an integer (as printed by a failed run), not "${fixed}"`);
  }
  return seed;
}

/** The message of a failed run: fast-check's report (seed, path, counterexample) and how to replay it. */
export function propertyFailureMessage(report: string, seed: number): string {
  return `${report}\n\nReplay with ${PROPERTY_SEED_ENV}=${seed} (for example with node --test --test-name-pattern="<test name>").`;
}

/**
 * fast-check parameters with a seed (random, or RINGKV_PROPERTY_SEED) and a
 * reporter that puts the seed and the replay variable into the failure. The
 * error's cause is the property's own error, as with fast-check's default.
 */
export function propertyParams<T>(
  params: Omit<fc.Parameters<T>, 'seed' | 'reporter' | 'asyncReporter'> = {},
): fc.Parameters<T> & { readonly seed: number } {
  const seed = propertySeed();
  return {
    ...params,
    seed,
    reporter: (details: fc.RunDetails<T>) => {
      if (!details.failed) return;
      const message = propertyFailureMessage(fc.defaultReportMessage(details) ?? 'Property failed', seed);
      throw details.runConfiguration.includeErrorInReport
        ? new Error(message)
        : new Error(message, { cause: details.errorInstance });
    },
  };
}
