/**
 * The end of the run: wait until the cluster has converged (every node sees
 * every peer up, no hints pending, and anti-entropy rounds on every node that
 * copy nothing more), then read every key at quorum and compare it with the
 * last acknowledged write, and compare the replicas' own copies.
 */
import { rangeEntries } from '../support/cluster.js';
import { RawConnection } from '../support/http-client.js';
import type { Load } from '../support/load-client.js';
import { sleep } from '../support/node-process.js';
import type { History, WriteRecord } from './history.js';
import { nodeView } from './status.js';

/** How long convergence may take before the check goes ahead anyway (and says so). */
const CONVERGENCE_TIMEOUT_MS = 120_000;
/** Tries per key of the final read, for answers other than 200 and 404. */
const READ_TRIES = 5;

export interface Convergence {
  readonly converged: boolean;
  readonly ms: number;
  /** What was still missing at the timeout. */
  readonly detail: string;
}

/**
 * Waits until, on every node, every peer is up and no hints are pending,
 * and anti-entropy has done two rounds in a row with nothing pulled or pushed.
 */
export async function waitConverged(urls: readonly string[]): Promise<Convergence> {
  const startMs = Date.now();
  const deadline = startMs + CONVERGENCE_TIMEOUT_MS;
  const last = new Map<string, { rounds: number; copied: number; quiet: number }>();
  let detail = '';
  for (let attempt = 0; Date.now() < deadline && attempt < 10_000; attempt++) {
    const views = await Promise.all(urls.map((url) => nodeView(url)));
    const missing: string[] = [];
    for (const [i, view] of views.entries()) {
      const url = urls[i]!;
      if (view === undefined) {
        missing.push(`${url} does not answer /v0/status`);
        continue;
      }
      const down = urls.filter((peer) => peer !== url && view.peers[peer] !== 'up');
      if (down.length > 0) missing.push(`${url} sees ${down.join(', ')} not up`);
      if (view.hintsPending > 0) missing.push(`${url} has ${view.hintsPending} hints pending`);
      const copied = view.antiEntropy.pulled + view.antiEntropy.pushed;
      const before = last.get(url);
      let quiet = before?.quiet ?? 0;
      if (before === undefined) quiet = 0;
      else if (view.antiEntropy.rounds > before.rounds) quiet = copied === before.copied ? quiet + 1 : 0;
      if (before === undefined || view.antiEntropy.rounds > before.rounds) {
        last.set(url, { rounds: view.antiEntropy.rounds, copied, quiet });
      }
      if (quiet < 2) missing.push(`${url}: ${quiet} quiet anti-entropy rounds of 2`);
    }
    if (missing.length === 0) return { converged: true, ms: Date.now() - startMs, detail: '' };
    detail = missing.join('; ');
    await sleep(500);
  }
  return { converged: false, ms: Date.now() - startMs, detail };
}

export interface LostWrite {
  readonly key: string;
  /** What the quorum read answered: the value, null for 404, or the failure. */
  readonly read: string;
  readonly acceptable: readonly (string | null)[];
  readonly lastAcknowledged: WriteRecord | undefined;
}

export interface FinalCheck {
  readonly keys: number;
  readonly matched: number;
  /** Keys whose quorum read is not a value the key may hold. */
  readonly lost: LostWrite[];
  /** Keys with no 200 or 404 after READ_TRIES tries. */
  readonly unreadable: string[];
  readonly ms: number;
}

/** Reads every key of the load at `query` (key i through node i mod K) and compares it with what the load allows. */
export async function checkEveryKey(
  load: Load,
  history: History,
  urls: readonly string[],
  query: Readonly<Record<string, string | number>>,
): Promise<FinalCheck> {
  const startMs = Date.now();
  const lost: LostWrite[] = [];
  const unreadable: string[] = [];
  let matched = 0;
  const keys = load.keys();
  for (const [i, key] of keys.entries()) {
    const port = Number(new URL(urls[i % urls.length]!).port);
    const read = await readKey(port, key, query);
    if (read.status !== 200 && read.status !== 404) {
      unreadable.push(`${key}: ${read.detail}`);
      continue;
    }
    const value = read.status === 200 ? read.body : null;
    const acceptable = load.acceptable(key);
    if (acceptable.includes(value)) {
      matched++;
      continue;
    }
    lost.push({
      key,
      read: value === null ? '404 (absent)' : JSON.stringify(value),
      acceptable,
      lastAcknowledged: history.lastAcknowledged(key),
    });
  }
  return { keys: keys.length, matched, lost, unreadable, ms: Date.now() - startMs };
}

async function readKey(
  port: number,
  key: string,
  query: Readonly<Record<string, string | number>>,
): Promise<{ status: number; body: string; detail: string }> {
  let path = `/v0/entity?id=${encodeURIComponent(key)}`;
  for (const [name, v] of Object.entries(query)) path += `&${name}=${v}`;
  let detail = '';
  for (let attempt = 0; attempt < READ_TRIES; attempt++) {
    if (attempt > 0) await sleep(300);
    let conn: RawConnection | undefined;
    try {
      conn = await RawConnection.open(port);
      await conn.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
      const answer = await conn.readAnswer(5000);
      const body = answer.body.toString();
      if (answer.status === 200 || answer.status === 404) return { status: answer.status, body, detail: '' };
      detail = `${answer.status} ${body.slice(0, 100)}`;
    } catch (err) {
      detail = err instanceof Error ? err.message : String(err);
    } finally {
      conn?.close();
    }
  }
  return { status: 0, body: '', detail };
}

export interface ReplicaAgreement {
  /** Keys of the load whose copies differ between nodes (present on some, absent or other on others). */
  readonly differing: number;
  readonly examples: string[];
  readonly scanErrors: string[];
}

/** Each node's own copy of the load's keys (a local range scan), compared. */
export async function compareReplicas(urls: readonly string[]): Promise<ReplicaAgreement> {
  const copies: Map<string, string>[] = [];
  const scanErrors: string[] = [];
  for (const url of urls) {
    try {
      const { status, entries } = await rangeEntries(
        Number(new URL(url).port),
        '/v0/entities?start=load-&end=load.',
      );
      if (status !== 200) scanErrors.push(`${url}: ${status}`);
      copies.push(new Map(entries));
    } catch (err) {
      scanErrors.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
      copies.push(new Map());
    }
  }
  const keys = new Set(copies.flatMap((copy) => [...copy.keys()]));
  const examples: string[] = [];
  let differing = 0;
  for (const key of [...keys].sort()) {
    const values = copies.map((copy) => copy.get(key) ?? null);
    if (values.every((v) => v === values[0])) continue;
    differing++;
    if (examples.length < 5)
      examples.push(`${key}: ${values.map((v) => (v === null ? '-' : v)).join(' | ')}`);
  }
  return { differing, examples, scanErrors };
}
