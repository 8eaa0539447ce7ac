/**
 * What the torture reads from a node's /v0/status (docs/api.md): its view
 * of its peers, hints pending, anti-entropy progress, corruption counts and
 * clock skew. A node that does not answer within the timeout reads as
 * undefined, never as an error.
 */
import { httpRequest } from '../support/http-client.js';
import { sleep } from '../support/node-process.js';

export interface NodeView {
  readonly peers: Readonly<Record<string, string>>;
  readonly hintsPending: number;
  readonly antiEntropy: { readonly rounds: number; readonly pulled: number; readonly pushed: number };
  /** Reads that found a damaged file (requests.corruption). */
  readonly corruption: number;
  readonly flushFailures: number;
  readonly compactionFailures: number;
  /** The skew measured to each peer, ms (the peer's clock minus this node's). */
  readonly skewMs: Readonly<Record<string, number>>;
  readonly beyondBound: readonly string[];
}

interface StatusJson {
  requests?: { corruption?: number };
  store?: {
    peers?: Record<string, string>;
    hints?: { pending?: Record<string, number> };
    antiEntropy?: { rounds?: number; pulled?: number; pushed?: number };
    clockSkew?: { beyondBound?: string[]; peers?: Record<string, { skewMs?: number }> };
    engine?: { flushFailures?: number; compactionFailures?: number };
  };
}

export async function nodeView(url: string, timeoutMs = 2000): Promise<NodeView | undefined> {
  let json: StatusJson;
  try {
    const answer = await httpRequest(`${url}/v0/status`, { timeoutMs });
    if (answer.status !== 200) return undefined;
    json = JSON.parse(answer.body.toString()) as StatusJson;
  } catch {
    return undefined;
  }
  const store = json.store ?? {};
  const skewMs: Record<string, number> = {};
  for (const [peer, sample] of Object.entries(store.clockSkew?.peers ?? {})) {
    if (typeof sample.skewMs === 'number') skewMs[peer] = sample.skewMs;
  }
  return {
    peers: store.peers ?? {},
    hintsPending: Object.values(store.hints?.pending ?? {}).reduce((sum, n) => sum + n, 0),
    antiEntropy: {
      rounds: store.antiEntropy?.rounds ?? 0,
      pulled: store.antiEntropy?.pulled ?? 0,
      pushed: store.antiEntropy?.pushed ?? 0,
    },
    corruption: json.requests?.corruption ?? 0,
    flushFailures: store.engine?.flushFailures ?? 0,
    compactionFailures: store.engine?.compactionFailures ?? 0,
    skewMs,
    beyondBound: store.clockSkew?.beyondBound ?? [],
  };
}

/** Whether GET /v0/health answers 200 within `timeoutMs` (liveness, not readiness). */
export async function healthy(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    return (await httpRequest(`${url}/v0/health`, { timeoutMs })).status === 200;
  } catch {
    return false;
  }
}

/** Waits (bounded by `timeoutMs`) until every node in `urls` sees every other as up; true once they do. */
export async function waitAllUp(urls: readonly string[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline && attempt < 10_000; attempt++) {
    const views = await Promise.all(urls.map((url) => nodeView(url)));
    const allUp = views.every(
      (view, i) => view !== undefined && urls.every((peer, j) => i === j || view.peers[peer] === 'up'),
    );
    if (allUp) return true;
    await sleep(200);
  }
  return false;
}
