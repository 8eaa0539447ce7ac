/**
 * The dashboard: `GET /` (or `/ui`) answers one self-contained page
 * (dashboard-page.ts: no build step, no CDN), which polls `GET /ui/cluster`.
 *
 * `/ui/cluster` is gathered here, on the node, rather than in the browser:
 * the page then needs to reach one node only (as behind a load balancer),
 * no cross-origin rules are loosened, and a member the node cannot reach is
 * shown as such. For each member (of the membership, as /metrics' peer
 * series) it holds how this node's links see it, its own /v0/status and its
 * /metrics text (each fetched with a short timeout and a size bound), or the
 * error that stood in the way. Rates and percentiles are computed by
 * the page from the difference between two polls.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isNodeStatus } from '../../client/index.js';
import { errorMessage } from '../../util/errors.js';
import { NodeReply, onlyGet, type RouteContext, sendJson, sendText } from './context.js';
import { DASHBOARD_PAGE } from './dashboard-page.js';

/** How long the node waits for a member's /v0/status or /metrics. */
const MEMBER_TIMEOUT_MS = 1500;
/** A /metrics text larger than this is left out (the page only needs a few series). */
const METRICS_BYTES_MAX = 4 << 20;

export function isDashboardPath(path: string): boolean {
  return path === '/' || path === '/ui' || path === '/ui/cluster';
}

export function handleDashboard(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): void {
  if (!onlyGet(ctx, req, res)) return;
  const reply = new NodeReply(res);
  ctx.counters.dashboard++;
  if (path !== '/ui/cluster') {
    ctx.counters.countResponse(200);
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(DASHBOARD_PAGE),
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy': DASHBOARD_POLICY,
      'referrer-policy': 'no-referrer',
    });
    res.end(DASHBOARD_PAGE);
    return;
  }
  void clusterView(ctx).then(
    // Live figures: a cache (or the browser's back button) must not show an old view as the current one.
    (view) =>
      sendJson(ctx, reply, 200, JSON.stringify(view), [
        'cache-control',
        'no-store',
        'x-content-type-options',
        'nosniff',
      ]),
    (err: unknown) => sendText(ctx, reply, 500, `Cannot gather the cluster view: ${errorMessage(err)}`),
  );
}

/**
 * The page needs nothing but its own inline style and script and fetches
 * from its node: anything else (a script or image a member's text might
 * smuggle into the markup, a form, a frame around it) is refused.
 */
const DASHBOARD_POLICY = [
  "default-src 'none'",
  `script-src '${inlineHash('script')}'`,
  `style-src '${inlineHash('style')}'`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The CSP hash of the page's one inline <script> or <style>. */
function inlineHash(tag: 'script' | 'style'): string {
  const body = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(DASHBOARD_PAGE)?.[1];
  if (body === undefined) throw new Error(`The dashboard page has no <${tag}>`);
  return `sha256-${createHash('sha256').update(body).digest('base64')}`;
}

interface MemberView {
  readonly url: string;
  readonly self: boolean;
  /** How this node's links see the member: up, down or leaving ('up' for itself). */
  readonly link: string;
  readonly status: unknown;
  readonly statusError: string | undefined;
  readonly metrics: string | undefined;
  readonly metricsError: string | undefined;
}

async function clusterView(
  ctx: RouteContext,
): Promise<{ node: string; atMs: number; members: MemberView[] }> {
  const store = ctx.store.status();
  const members = membersOf(store) ?? (ctx.cluster.length > 0 ? ctx.cluster : [ctx.nodeUrl]);
  const links = peerLinks(store);
  const views = await Promise.all(
    members.map(async (url): Promise<MemberView> => {
      const [status, metrics] = await Promise.all([
        fetchText(`${url}/v0/status`),
        fetchText(`${url}/metrics`),
      ]);
      let parsed: unknown;
      let statusError = status.error;
      if (status.text !== undefined) {
        try {
          parsed = JSON.parse(status.text);
        } catch {
          statusError = 'the status is not JSON';
        }
        // Another server's JSON would show as a member with no figures, as if it were one.
        if (statusError === undefined && !isNodeStatus(parsed)) {
          parsed = undefined;
          statusError = 'the status is not a ringkv status';
        }
      }
      const self = url === ctx.nodeUrl;
      return {
        url,
        self,
        link: self ? 'up' : (links[url] ?? 'unknown'),
        status: parsed,
        statusError,
        metrics: metrics.text,
        metricsError: metrics.error,
      };
    }),
  );
  return { node: ctx.nodeUrl, atMs: Date.now(), members: views };
}

/**
 * The members as the node's membership holds them (removed ones left out),
 * when it has one: not --cluster, which a node that joined later is in no
 * one's list, and a node started with --join has none.
 */
function membersOf(status: unknown): string[] | undefined {
  const members = (status as { membership?: { members?: unknown } } | undefined)?.membership?.members;
  if (!Array.isArray(members)) return undefined;
  const urls: string[] = [];
  for (const member of members as { url?: unknown; state?: unknown }[]) {
    if (typeof member?.url === 'string' && member.state !== 'removed') urls.push(member.url);
  }
  return urls.length > 0 ? urls : undefined;
}

/** The store's view of its peers' links, when it is a cluster store. */
function peerLinks(status: unknown): Record<string, string> {
  const peers = (status as { peers?: unknown } | undefined)?.peers;
  if (typeof peers !== 'object' || peers === null) return {};
  const links: Record<string, string> = {};
  for (const [url, state] of Object.entries(peers)) {
    if (typeof state === 'string') links[url] = state;
  }
  return links;
}

/** A member's answer as text (a 503 of /v0/status still carries its JSON), or why there is none. */
async function fetchText(url: string): Promise<{ text?: string; error?: string }> {
  try {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(MEMBER_TIMEOUT_MS)]);
    const response = await fetch(url, { signal });
    if (response.status !== 200 && response.status !== 503) {
      controller.abort();
      return { error: `answered ${response.status}` };
    }
    // Read up to the bound and no further: a member that answers without end must not fill this node's memory.
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of response.body ?? []) {
      bytes += chunk.byteLength;
      if (bytes > METRICS_BYTES_MAX) break;
      chunks.push(chunk);
    }
    if (bytes > METRICS_BYTES_MAX) {
      controller.abort();
      return { error: 'answer too large' };
    }
    return { text: Buffer.concat(chunks).toString() };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    return { error: errorMessage(cause ?? err) };
  }
}
