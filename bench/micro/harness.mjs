/**
 * A small micro-benchmark harness: each case times a function over batches
 * of calls and reports nanoseconds per call. The variants of one helper
 * (current implementation and candidates) run in interleaved rounds, so that
 * a noisy neighbour slows all of them alike, and the median round is quoted.
 *
 * Every variant returns a value that is folded into a sink, so the optimiser
 * cannot drop the work; each case also checks that its variants agree on a
 * sample input before timing them (a fast wrong candidate is no candidate).
 */
import { performance } from 'node:perf_hooks';
import { median } from '../lib/stats.mjs';

let sink = 0;

function fold(v) {
  if (typeof v === 'number') sink = (sink + v) | 0;
  else if (typeof v === 'bigint') sink = (sink + Number(v & 0xffn)) | 0;
  else if (v !== null && v !== undefined) sink = (sink + (v.length ?? 1)) | 0;
}

/**
 * A timing loop of its own for each variant: compiled from source, so that
 * its call site and the fold see one function and one result type only
 * (a loop shared by every variant would go megamorphic and time the dispatch).
 */
function makeTimer(fn) {
  const source = `
    let local = 0;
    for (let i = 0; i < calls; i++) {
      const v = fn(i);
      local = (local + (typeof v === 'number' ? v : v === undefined || v === null ? 0 : v.length ?? 1)) | 0;
    }
    return local;`;
  const loop = new Function('fn', 'calls', source);
  /** ns per call of fn(i) over `calls` calls (i = 0..calls-1). */
  return (calls) => {
    const started = performance.now();
    fold(loop(fn, calls));
    return ((performance.now() - started) * 1e6) / calls;
  };
}

/**
 * @param {string} name
 * @param {Record<string, (i: number) => unknown>} variants  the first is the current implementation
 * @param {{ rounds?: number, targetMs?: number }} options
 */
export function compare(name, variants, { rounds = 7, targetMs = 60 } = {}) {
  const names = Object.keys(variants);
  // Calibrate: calls per batch so that one batch of the first variant takes ~targetMs.
  const timers = Object.fromEntries(names.map((n) => [n, makeTimer(variants[n])]));
  let calls = 1000;
  for (let i = 0; i < 20; i++) {
    const ns = timers[names[0]](calls);
    if ((ns * calls) / 1e6 >= targetMs / 4) {
      calls = Math.max(1000, Math.round((targetMs * 1e6) / ns));
      break;
    }
    calls *= 4;
  }
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) timers[n](calls); // warm every variant before timing
  for (let r = 0; r < rounds; r++) for (const n of names) samples[n].push(timers[n](calls));
  const base = median(samples[names[0]]);
  const results = names.map((n) => {
    const ns = median(samples[n]);
    return { variant: n, nsPerCall: Math.round(ns * 10) / 10, relative: Math.round((ns / base) * 100) / 100 };
  });
  return { name, callsPerBatch: calls, rounds, results, sink };
}

export function sameResults(label, values) {
  const json = values.map((v) =>
    JSON.stringify(v, (_, x) =>
      typeof x === 'bigint' ? x.toString() : x?.type === 'Buffer' ? x.data.join(',') : x,
    ),
  );
  for (let i = 1; i < json.length; i++) {
    if (json[i] !== json[0]) throw new Error(`${label}: variant ${i} disagrees: ${json[i]} vs ${json[0]}`);
  }
}
