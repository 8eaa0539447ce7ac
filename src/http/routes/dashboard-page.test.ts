/**
 * The dashboard page's arithmetic, run as the browser runs it: its script,
 * taken from the page, in a context of its own (a document and fetch that
 * do nothing), whose functions are then called on /metrics texts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createContext, runInContext } from 'node:vm';
import { DASHBOARD_PAGE } from './dashboard-page.js';

type Buckets = Map<number, number>;
interface PageFunctions {
  latencyBuckets(text: string): Buckets;
  p99Ms(before: Buckets | undefined, after: Buckets): number | undefined;
  increase(before: number, after: number): number;
}

function pageFunctions(): PageFunctions {
  const script = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_PAGE)![1]!;
  const context = createContext({
    document: { getElementById: () => ({ textContent: '' }) },
    fetch: () => new Promise(() => {}),
    AbortSignal,
    setTimeout: () => 0,
  });
  runInContext(script, context);
  return context as unknown as PageFunctions;
}

/** A /metrics text with the latency histogram of `op` (code 200): `counts` cumulative per bound, then +Inf. */
function latencyText(series: Record<string, readonly number[]>): string {
  const bounds = ['0.001', '0.01', '0.1', '1', '2.5'];
  const lines = ['# TYPE ringkv_http_request_duration_seconds histogram'];
  for (const [op, counts] of Object.entries(series)) {
    for (const [i, le] of bounds.entries()) {
      lines.push(
        `ringkv_http_request_duration_seconds_bucket{op="${op}",code="200",le="${le}"} ${counts[i]}`,
      );
    }
    lines.push(
      `ringkv_http_request_duration_seconds_bucket{op="${op}",code="200",le="+Inf"} ${counts.at(-1)}`,
    );
    lines.push(`ringkv_http_request_duration_seconds_count{op="${op}",code="200"} ${counts.at(-1)}`);
  }
  return `${lines.join('\n')}\n`;
}

describe('dashboard page', () => {
  const page = pageFunctions();

  it("computes the p99 of client requests, not of the dashboard's own polls and scrapes", () => {
    // 1000 GETs under 1 ms in both; between the polls, 200 more GETs under 1 ms, and the node's own
    // /ui/cluster polls (2.5 s: a hung member) and /metrics and /v0/status scrapes, slower.
    const before = page.latencyBuckets(
      latencyText({ get: [1000, 1000, 1000, 1000, 1000, 1000], dashboard: [0, 0, 0, 0, 5, 5] }),
    );
    const after = page.latencyBuckets(
      latencyText({
        get: [1200, 1200, 1200, 1200, 1200, 1200],
        dashboard: [0, 0, 0, 0, 10, 10],
        metrics: [0, 10, 10, 10, 10, 10],
        status: [0, 10, 10, 10, 10, 10],
      }),
    );
    assert.equal(page.p99Ms(before, after), 1);
  });

  it('counts from zero again when a member restarted between two polls', () => {
    assert.equal(page.increase(500, 520), 20);
    assert.equal(page.increase(500, 30), 30);
    const before = page.latencyBuckets(latencyText({ put: [0, 0, 0, 900, 1000, 1000] }));
    const after = page.latencyBuckets(latencyText({ put: [100, 100, 100, 100, 100, 100] }));
    assert.equal(page.p99Ms(before, after), 1);
  });
});
