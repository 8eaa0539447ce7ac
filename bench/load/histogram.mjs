/**
 * A log-bucketed latency histogram in the manner of HdrHistogram: values
 * (integer microseconds) below 256 are counted exactly; above that, every
 * power of two is split into 128 equal buckets, so a bucket's width is at
 * most 1/128 (0.8%) of its value. Recording is a few integer operations and
 * no allocation, cheap enough to run on every response of a load generator
 * that shares two cores with the server it measures.
 *
 *   index(v) = v                               for v < 256
 *            = (s << 7) + (v >>> s), s = h - 7 for v in [2^h, 2^(h+1)), h >= 8
 *
 * Indexes are contiguous: v = 256 (h = 8, s = 1) maps to 128 + 128 = 256.
 * Values are clamped to 2^32 - 1 us (71 minutes), so 3,328 buckets suffice.
 */
const SUB_BITS = 7;
const EXACT_MAX = 1 << (SUB_BITS + 1); // 256
const BUCKET_COUNT = (32 - SUB_BITS) * (1 << SUB_BITS) + EXACT_MAX;
const VALUE_MAX = 0xffffffff;

export function bucketIndex(valueUs) {
  const v = valueUs >= VALUE_MAX ? VALUE_MAX : valueUs <= 0 ? 0 : Math.floor(valueUs);
  if (v < EXACT_MAX) return v;
  const shift = 31 - Math.clz32(v) - SUB_BITS;
  return (shift << SUB_BITS) + (v >>> shift);
}

/** The smallest value that falls into bucket `index`. */
export function bucketLow(index) {
  if (index < EXACT_MAX) return index;
  const shift = (index >>> SUB_BITS) - 1;
  return (index - (shift << SUB_BITS)) * 2 ** shift;
}

/** The largest value that falls into bucket `index` (what percentiles report: never understated). */
export function bucketHigh(index) {
  return bucketLow(index + 1) - 1;
}

export class Histogram {
  #counts = new Float64Array(BUCKET_COUNT);
  #count = 0;
  #sum = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = 0;

  record(valueUs) {
    this.#counts[bucketIndex(valueUs)]++;
    this.#count++;
    this.#sum += valueUs;
    if (valueUs < this.#min) this.#min = valueUs;
    if (valueUs > this.#max) this.#max = valueUs;
  }

  get count() {
    return this.#count;
  }

  /**
   * The value at or below which `p` percent of recorded values lie (upper edge of its bucket, capped at
   * max); `p` to 4 decimals.
   */
  percentile(p) {
    if (this.#count === 0) return 0;
    // In integers: (99.9 / 100) * 6000 is 5994.000000000001 in floating point, and its ceiling
    // would report the next value up (for 1,000 values, p99.9 would be the max).
    const rank = Math.max(1, Math.ceil((Math.round(p * 10000) * this.#count) / 1000000));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(bucketHigh(i), this.#max);
    }
    return this.#max;
  }

  /** A plain object (sparse buckets) that survives JSON and process boundaries. */
  toJSON() {
    const buckets = [];
    for (let i = 0; i < BUCKET_COUNT; i++) if (this.#counts[i] !== 0) buckets.push([i, this.#counts[i]]);
    return { count: this.#count, sum: this.#sum, min: this.#count ? this.#min : 0, max: this.#max, buckets };
  }

  static fromJSON(json) {
    const h = new Histogram();
    for (const [i, n] of json.buckets) h.#counts[i] = n;
    h.#count = json.count;
    h.#sum = json.sum;
    h.#min = json.count ? json.min : Number.POSITIVE_INFINITY;
    h.#max = json.max;
    return h;
  }

  /** One histogram of everything recorded in `jsons` (toJSON() forms), e.g. the slots of a timeline. */
  static merge(jsons) {
    const h = new Histogram();
    for (const json of jsons) {
      if (json.count === 0) continue;
      for (const [i, n] of json.buckets) h.#counts[i] += n;
      h.#count += json.count;
      h.#sum += json.sum;
      if (json.min < h.#min) h.#min = json.min;
      if (json.max > h.#max) h.#max = json.max;
    }
    return h;
  }

  /** Latency summary in milliseconds. */
  summary() {
    const ms = (us) => Math.round(us) / 1000;
    return {
      count: this.#count,
      meanMs: this.#count ? ms(this.#sum / this.#count) : 0,
      p50Ms: ms(this.percentile(50)),
      p90Ms: ms(this.percentile(90)),
      p99Ms: ms(this.percentile(99)),
      p999Ms: ms(this.percentile(99.9)),
      maxMs: ms(this.#max),
    };
  }
}
