/**
 * Membership for end-to-end tests of moves: read a node's view from
 * /v0/status, wait for a move to complete, and count each key's copies on
 * the nodes (their local ranges).
 *
 *   const nodes = await testNodes(5, { args: ['--sync', 'off'], dirPrefix: 'ringkv-move-' });
 *   await nodes.start(3, ['--join', nodes.urls[0]]);
 *   await waitMembers(url, { normal: [a, b, c, d] });   // the move is complete everywhere url knows of
 *   const copies = await copiesPerKey(urls, 'load-');   // key -> how many nodes hold it locally
 */
import { rangeEntries } from './cluster.js';
import { httpRequest } from './http-client.js';
import type { Load } from './load-client.js';
import { type NodeProcess, sleep, startNode } from './node-process.js';
import { freePorts } from './ports.js';
import { makeTempDir } from './temp-dir.js';

export interface MemberView {
  readonly url: string;
  readonly state: 'joining' | 'normal' | 'leaving' | 'removed';
  readonly dead?: boolean;
  readonly share: number;
  readonly futureShare?: number;
}

export interface MembershipView {
  readonly epoch: string;
  readonly members: readonly MemberView[];
  readonly move: string | null;
  readonly receiving: Record<string, unknown> | null;
  /** The last cleanup after a move: its epoch and state (scheduled, running, done, skipped, failed). */
  readonly cleanup: { readonly epoch: string; readonly state: string } | null;
}

/** The node's membership, as its /v0/status shows it (whatever the status code). */
export async function membershipOf(url: string): Promise<MembershipView> {
  const answer = await httpRequest(`${url}/v0/status`, { timeoutMs: 2000 });
  const status = JSON.parse(answer.body.toString()) as { store: { membership?: MembershipView } };
  if (status.store.membership === undefined) throw new Error(`${url} shows no membership`);
  return status.store.membership;
}

/**
 * Waits (bounded) until `url` shows no move under way and exactly `normal`
 * as its normal members; resolves to that view.
 */
export async function waitMembers(
  url: string,
  expected: { readonly normal: readonly string[] },
  timeoutMs = 30_000,
): Promise<MembershipView> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const view = await membershipOf(url);
      const normal = view.members.filter((m) => m.state === 'normal').map((m) => m.url);
      last = `epoch ${view.epoch}, move ${view.move}, normal ${normal.join(',')}`;
      if (view.move === null && sameSet(normal, expected.normal)) return view;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`${url}: members not ${expected.normal.join(',')} within ${timeoutMs} ms (last: ${last})`);
}

/** Waits (bounded) until `check` passes on `url`'s membership. */
export async function waitMembership(
  url: string,
  check: (view: MembershipView) => boolean,
  timeoutMs = 30_000,
): Promise<MembershipView> {
  const deadline = Date.now() + timeoutMs;
  let last: MembershipView | string = 'no answer';
  while (Date.now() < deadline) {
    try {
      const view = await membershipOf(url);
      last = view;
      if (check(view)) return view;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(50);
  }
  throw new Error(`${url}: membership check not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** Each normal member's share of the ring, checked within ±tolerance of the even share; the worst deviation. */
export function worstShareDeviation(view: MembershipView): number {
  const normal = view.members.filter((m) => m.state === 'normal');
  const even = 1 / normal.length;
  return Math.max(...normal.map((m) => Math.abs(m.share / even - 1)));
}

/** For every key with `prefix`, how many of `urls` hold it in their local range (tombstones excluded). */
export async function copiesPerKey(urls: readonly string[], prefix: string): Promise<Map<string, number>> {
  const copies = new Map<string, number>();
  for (const url of urls) {
    const { hostname, port } = new URL(url);
    const { status, entries } = await rangeEntries(
      Number(port),
      `/v0/entities?start=${encodeURIComponent(prefix)}`,
      hostname,
    );
    if (status !== 200) throw new Error(`${url}: local range answered ${status}`);
    for (const [key] of entries) {
      if (key.startsWith(prefix)) copies.set(key, (copies.get(key) ?? 0) + 1);
    }
  }
  return copies;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((url) => b.includes(url));
}

/**
 * Writes keys `${prefix}${i}`, i < count, each with value(i), at
 * ack=3&from=3 (on all three replicas), 20 at a time through the nodes in
 * turn; every write must be answered 201.
 */
export async function writeKeys(
  urls: readonly string[],
  keys: { readonly count: number; readonly prefix: string; readonly value: (i: number) => string },
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.count; i = next++) {
      const answer = await fetch(`${urls[i % urls.length]}/v0/entity?id=${keys.prefix}${i}&ack=3&from=3`, {
        method: 'PUT',
        body: keys.value(i),
      });
      await answer.arrayBuffer();
      if (answer.status !== 201) throw new Error(`PUT ${keys.prefix}${i}: ${answer.status}`);
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
}

/**
 * Resolves once the load has answered `more` requests more; rejects if it has
 * not within 10 s, or if the load ended first (the cluster stopped answering).
 */
export async function answersMore(load: Load, more: number): Promise<void> {
  const start = load.answered;
  const target = start + more;
  for (let i = 0; i < 400 && load.answered < target && !load.finished; i++) await sleep(25);
  if (load.answered < target) {
    const why = load.finished ? 'before the load ended' : 'within 10 s';
    throw new Error(`The load got ${load.answered - start} answers, not ${more}, ${why}`);
  }
}

export interface TestNodes {
  readonly ports: readonly number[];
  readonly urls: readonly string[];
  readonly dirs: readonly string[];
  /** Starts node i on its port and data directory with these flags (after the common ones) and waits for /v0/health?ready=1. */
  start(index: number, args: readonly string[], env?: Readonly<Record<string, string>>): Promise<NodeProcess>;
}

/** `count` loopback nodes to start as a test needs them: free ports, their URLs, fresh data directories. */
export async function testNodes(
  count: number,
  common: {
    readonly args: readonly string[];
    readonly env?: Readonly<Record<string, string>>;
    readonly dirPrefix: string;
  },
): Promise<TestNodes> {
  const ports = await freePorts(count);
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const dirs = await Promise.all(ports.map(() => makeTempDir(common.dirPrefix)));
  return {
    ports,
    urls,
    dirs,
    start: (index, args, env) =>
      startNode({
        dataDir: dirs[index]!,
        port: ports[index]!,
        args: [...common.args, ...args],
        env: { ...common.env, ...env },
        readiness: 'health',
      }),
  };
}
