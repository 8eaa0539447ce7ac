/**
 * A writer of the Prometheus text exposition format (version 0.0.4), for
 * /metrics: metric families, each with its `# HELP` and `# TYPE` line and
 * then its samples. Values are built at scrape time from counters the node
 * keeps anyway; nothing here runs per request.
 *
 * - Names and label names are checked (assert: they are the code's own
 *   constants); a family name may appear once.
 * - Label values and HELP text are escaped as the format requires
 *   (backslash, double quote in label values, newline).
 * - A histogram's buckets are written cumulative, with `le="+Inf"` equal to
 *   `_count`, from a Histogram's per-bucket counts (histogram.ts).
 *
 *   const text = new PrometheusText();
 *   text.counter('ringkv_engine_writes_total', 'Entries written', [{ value: 42 }]);
 *   text.gauge('ringkv_peer_up', 'Whether the peer is up', [{ labels: { peer: url }, value: 1 }]);
 *   response.end(text.toString());
 */
import { assert } from './assert.js';
import type { Histogram } from './histogram.js';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}

export interface HistogramSeries {
  readonly labels: Labels;
  readonly histogram: Histogram;
}

/** The Content-Type of an answer in this format. */
export const PROMETHEUS_TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class PrometheusText {
  readonly #lines: string[] = [];
  readonly #names = new Set<string>();

  /** A counter family: `name` ends in `_total`, values only ever grow. */
  counter(name: string, help: string, samples: readonly Sample[]): void {
    assert(name.endsWith('_total'), `counter ${name} must end in _total`);
    this.#family(name, 'counter', help);
    for (const sample of samples) this.#sample(name, sample.labels, sample.value);
  }

  gauge(name: string, help: string, samples: readonly Sample[]): void {
    this.#family(name, 'gauge', help);
    for (const sample of samples) this.#sample(name, sample.labels, sample.value);
  }

  histogram(name: string, help: string, series: readonly HistogramSeries[]): void {
    this.#family(name, 'histogram', help);
    for (const { labels, histogram } of series) {
      let cumulative = 0;
      for (let i = 0; i < histogram.bounds.length; i++) {
        cumulative += histogram.counts[i]!;
        this.#sample(`${name}_bucket`, labels, cumulative, formatValue(histogram.bounds[i]!));
      }
      this.#sample(`${name}_bucket`, labels, histogram.count, '+Inf');
      this.#sample(`${name}_sum`, labels, histogram.sum);
      this.#sample(`${name}_count`, labels, histogram.count);
    }
  }

  /** Text already in this format (whole families, e.g. prom-client's), with names not written here; blank lines dropped. */
  append(text: string): void {
    for (const line of text.split('\n')) if (line.length > 0) this.#lines.push(line);
  }

  toString(): string {
    return this.#lines.length === 0 ? '' : `${this.#lines.join('\n')}\n`;
  }

  #family(name: string, type: string, help: string): void {
    assert(NAME.test(name), `metric name ${name} is not valid`);
    assert(!this.#names.has(name), `metric ${name} written twice`);
    this.#names.add(name);
    this.#lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  }

  #sample(name: string, labels: Labels | undefined, value: number, le?: string): void {
    let text = name;
    const names = labels === undefined ? [] : Object.keys(labels);
    if (names.length > 0 || le !== undefined) {
      const pairs: string[] = [];
      for (const label of names) {
        assert(LABEL_NAME.test(label) && label !== 'le', `label name ${label} is not valid`);
        pairs.push(`${label}="${escapeLabelValue(labels![label]!)}"`);
      }
      if (le !== undefined) pairs.push(`le="${le}"`);
      text += `{${pairs.join(',')}}`;
    }
    this.#lines.push(`${text} ${formatValue(value)}`);
  }
}

/** A sample value or bucket bound as the format writes it: +Inf, -Inf, NaN, or the number. */
export function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
