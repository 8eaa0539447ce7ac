/**
 * Histograms read from a node's `/metrics` (the Prometheus text format), so
 * that a bench window can say what a node's event loop and garbage collector
 * did during it: take a snapshot at the window's start and one at its end,
 * subtract them (diffHistograms), and read quantiles off the difference.
 *
 * A snapshot keeps, per metric name and label set (without `le`), the
 * cumulative bucket counts by upper bound, plus `_sum` and `_count`:
 *
 *   { 'ringkv_nodejs_gc_duration_seconds': { 'kind="minor"': { bounds: [...], cumulative: [...], sum, count } } }
 */

/** The histograms named in `names` from an exposition text. */
export function parseHistograms(text, names) {
  const wanted = new Set(names);
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*?)_(bucket|sum|count)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null || !wanted.has(m[1])) continue;
    const [, name, part, labelText = '', valueText] = m;
    const value = Number(valueText);
    let le = null;
    const labels = [];
    for (const pair of labelText.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      if (pair.startsWith('le=')) le = pair.slice(4, -1);
      else labels.push(pair);
    }
    if (out[name] === undefined) out[name] = {};
    const key = labels.join(',');
    if (out[name][key] === undefined) out[name][key] = { bounds: [], cumulative: [], sum: 0, count: 0 };
    const series = out[name][key];
    if (part === 'bucket' && le !== null) {
      series.bounds.push(le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le));
      series.cumulative.push(value);
    } else if (part === 'sum') {
      series.sum = value;
    } else if (part === 'count') {
      series.count = value;
    }
  }
  return out;
}

/** end - start, series by series (a series absent at the start counts from zero). */
export function diffHistograms(start, end) {
  const out = {};
  for (const [name, byLabels] of Object.entries(end ?? {})) {
    for (const [labels, b] of Object.entries(byLabels)) {
      const a = start?.[name]?.[labels];
      if (out[name] === undefined) out[name] = {};
      out[name][labels] = {
        bounds: b.bounds,
        cumulative: b.cumulative.map((c, i) => c - (a?.cumulative[i] ?? 0)),
        sum: b.sum - (a?.sum ?? 0),
        count: b.count - (a?.count ?? 0),
      };
    }
  }
  return out;
}

/** The series of one metric added together (same bounds), optionally only those whose labels pass `keep`. */
export function mergeSeries(byLabels, keep = () => true) {
  let merged = null;
  for (const [labels, s] of Object.entries(byLabels ?? {})) {
    if (!keep(labels)) continue;
    if (merged === null)
      merged = { bounds: s.bounds, cumulative: [...s.cumulative], sum: s.sum, count: s.count };
    else {
      s.cumulative.forEach((c, i) => {
        merged.cumulative[i] += c;
      });
      merged.sum += s.sum;
      merged.count += s.count;
    }
  }
  return merged;
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside its
 * bucket (as Prometheus's histogram_quantile does); the highest finite bound
 * when it falls in +Inf, null when empty.
 */
export function histogramQuantile(series, q) {
  if (series === null || series === undefined) return null;
  const total = series.cumulative.at(-1) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < series.bounds.length; i++) {
    const bound = series.bounds[i];
    const count = series.cumulative[i];
    if (count >= rank) {
      if (!Number.isFinite(bound)) return prevBound;
      const inBucket = count - prevCount;
      return inBucket <= 0 ? bound : prevBound + ((bound - prevBound) * (rank - prevCount)) / inBucket;
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}
