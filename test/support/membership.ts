/**
 * Membership for end-to-end tests of moves: read a node's view from
 * /v0/status, wait for a move to complete, and count each key's copies on
 * the nodes (their local ranges).
 *
 *   await waitMembers(url, { normal: [a, b, c, d] });   // the move is complete everywhere url knows of
 *   const copies = await copiesPerKey(urls, 'load-');   // key -> how many nodes hold it locally
 */
import { rangeEntries } from './cluster.js';
import { httpRequest } from './http-client.js';
import { sleep } from './node-process.js';

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
