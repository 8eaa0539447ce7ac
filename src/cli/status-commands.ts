/**
 * `ringkv status` and `ringkv ring`: what a node says about itself and the
 * cluster (GET /v0/status), for people (aligned text) or scripts (--json).
 * What the node sent is printed with its control characters escaped
 * (terminal-safe.ts): a node's text never drives the terminal.
 *
 * The ring is not sent by the node: /v0/status lists the members (its
 * membership: each member's state and share of the ring, and the move under
 * way; a node without one, its `--cluster` URLs) and how this node's links
 * see each (`store.peers`). A key's replicas are computed here with the
 * nodes' own ring (cluster/membership's ringOf over the current ring's
 * members, placed as the nodes place them): the same members give the same
 * replicas. During a move, each new owner's /v0/status gives its streaming.
 */
import { type NodeStatus, RingkvClient, UnavailableError } from '../client/index.js';
import { MemberState, type Member as RingMember, ringOf } from '../cluster/membership/index.js';
import { Ring } from '../cluster/ring/index.js';
import { RingkvError } from '../util/errors.js';
import {
  CONNECTION_FLAGS_USAGE,
  clientCommand,
  EXIT_CODES_USAGE,
  output,
  positiveInteger,
} from './client-command.js';
import { EXIT } from './command.js';
import { jsonSafe, terminalSafe } from './terminal-safe.js';

export const status = clientCommand({
  usage: `Usage: ringkv status [flags]

Prints the node's /v0/status: a summary, or with --json the whole document.

  --json           the JSON as the node sends it
${CONNECTION_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: [],
  switches: ['json'],
  positionals: { min: 0, max: 0, synopsis: 'ringkv status' },
  run: async (client, { switches }) => {
    const answer = await statusOf(client);
    await output(switches.json ? `${jsonSafe(JSON.stringify(answer, null, 2))}\n` : summary(answer));
    return EXIT.ok;
  },
});

export const ring = clientCommand({
  usage: `Usage: ringkv ring [KEY] [flags]

Prints the cluster's members as the node asked sees them: its link to each
(up, down, leaving), each one's membership state (joining, normal, leaving)
and share of the ring (during a move, the share it will have after it, and
how far each new owner's streaming got); with KEY, the key's replicas in
ring order instead: the first --from of them hold it.

  --from F         how many replicas to list (default: all members)
  --json           {"node", "epoch", "move", "members": [{"url", "state", "member", "share",
                   "futureShare", "receiving"}], "key", "replicas": [...]}
${CONNECTION_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['from'],
  switches: ['json'],
  positionals: { min: 0, max: 1, synopsis: 'ringkv ring [KEY]' },
  run: async (client, { flags, switches, positionals }) => {
    // Checked before the request, as every command's numbers are: a bad one is bad usage, node or not.
    const fromFlag = positiveInteger(flags.from, 'from');
    const answer = await statusOf(client);
    const membership = membershipOf(answer);
    const members = await withProgress(membersOf(answer, membership), membership);
    const ring = ringOfStatus(answer, membership);
    const key = positionals[0];
    const from = fromFlag ?? ring.nodes.length;
    if (from > ring.nodes.length) {
      throw new RingkvError(
        'RINGKV_CONFIG',
        `Bad --from: ${from} is more than the ${ring.nodes.length} members`,
      );
    }
    const replicas = key === undefined ? undefined : ring.replicas(Buffer.from(key), from);
    if (switches.json) {
      const keyFields = key === undefined ? {} : { key, replicas };
      const moveFields = membership === undefined ? {} : { epoch: membership.epoch, move: membership.move };
      await output(
        `${jsonSafe(JSON.stringify({ node: answer.node, ...moveFields, members, ...keyFields }))}\n`,
      );
      return EXIT.ok;
    }
    const byUrl = new Map(members.map((m) => [m.url, m]));
    const rows = (replicas ?? members.map((m) => m.url)).map((url, i) => {
      const member = byUrl.get(url);
      return [
        ...(replicas === undefined ? [] : [String(i + 1)]),
        url,
        member?.state ?? 'unknown',
        ...(membership === undefined ? [] : memberCells(member, membership.move !== null)),
        url === answer.node ? '(the node asked)' : '',
      ];
    });
    const moveLine =
      membership?.move === null || membership === undefined || replicas !== undefined
        ? ''
        : `${terminalSafe(`epoch ${membership.epoch}: move under way (${membership.move})`)}\n`;
    await output(table(rows) + moveLine);
    return EXIT.ok;
  },
});

/**
 * The node's /v0/status. A node starting or leaving answers 503 with its
 * whole status document, kilobytes on one line: the failure says what that
 * means instead.
 */
async function statusOf(client: RingkvClient): Promise<NodeStatus> {
  try {
    return await client.status();
  } catch (err) {
    if (err instanceof UnavailableError && err.status === 503 && isNotReadyStatus(err.reason)) {
      throw new UnavailableError('RINGKV_UNAVAILABLE', {
        status: 503,
        reason: 'not ready (starting or leaving)',
        node: err.node,
      });
    }
    throw err;
  }
}

function isNotReadyStatus(text: string): boolean {
  try {
    return record(JSON.parse(text)).ready === false;
  } catch {
    return false;
  }
}

interface Member {
  readonly url: string;
  /** How the asked node's link sees it: up, down, leaving. */
  readonly state: string;
  /** Its membership state: joining, normal, leaving (with a membership). */
  readonly member?: string;
  readonly share?: number;
  readonly futureShare?: number;
  /** A new owner's streaming progress during a move. */
  readonly receiving?: Record<string, unknown> | null;
}

/** What /v0/status says of the membership (store.membership), when the node has one. */
interface StatusMembership {
  readonly epoch: string;
  readonly move: string | null;
  readonly newOwners: readonly string[];
  readonly members: readonly {
    readonly url: string;
    readonly state: string;
    readonly dead?: boolean;
    readonly token?: string;
    readonly share: number;
    readonly futureShare?: number;
  }[];
}

function membershipOf(answer: NodeStatus): StatusMembership | undefined {
  const membership = record(answer.store).membership;
  return membership === undefined ? undefined : (membership as StatusMembership);
}

/**
 * Every member in ring order (sorted URLs; removed ones left out), the node
 * asked `up` (it answered), the others as its links see them.
 */
function membersOf(answer: NodeStatus, membership: StatusMembership | undefined): Member[] {
  const peers = (record(answer.store).peers ?? {}) as Record<string, unknown>;
  const link = (url: string): string =>
    url === answer.node ? 'up' : typeof peers[url] === 'string' ? (peers[url] as string) : 'unknown';
  if (membership === undefined) return [...answer.cluster].sort().map((url) => ({ url, state: link(url) }));
  return membership.members
    .filter((m) => m.state !== 'removed')
    .map((m) => ({
      url: m.url,
      state: link(m.url),
      member: m.state + (m.dead === true ? ' (dead)' : ''),
      share: m.share,
      ...(m.futureShare === undefined ? {} : { futureShare: m.futureShare }),
    }));
}

/** During a move, each new owner's streaming progress, from its own /v0/status. */
async function withProgress(members: Member[], membership: StatusMembership | undefined): Promise<Member[]> {
  if (membership === undefined || membership.move === null) return members;
  return Promise.all(
    members.map(async (member) => {
      if (!membership.newOwners.includes(member.url)) return member;
      try {
        const status = await new RingkvClient({ nodes: member.url, timeoutMs: 2000 }).status();
        return { ...member, receiving: membershipOf(status) === undefined ? null : receivingOf(status) };
      } catch {
        return { ...member, receiving: null };
      }
    }),
  );
}

function receivingOf(status: NodeStatus): Record<string, unknown> | null {
  const receiving = record(record(status.store).membership).receiving;
  return receiving === null || receiving === undefined ? null : record(receiving);
}

/** The ring a key is placed by: the membership's current ring, or the --cluster URLs. */
function ringOfStatus(answer: NodeStatus, membership: StatusMembership | undefined): Ring {
  if (membership === undefined) return new Ring(answer.cluster);
  const current: RingMember[] = membership.members
    .filter((m) => m.state === 'normal' || m.state === 'leaving')
    .map((m) => ({
      url: m.url,
      state: m.state === 'normal' ? MemberState.Normal : MemberState.Leaving,
      dead: m.dead === true,
      token: m.token ?? m.url,
      since: 0n,
    }));
  return ringOf(current) ?? new Ring(answer.cluster);
}

/** Membership state, share (and during a move the share after it), and a new owner's streaming. */
function memberCells(member: Member | undefined, moving: boolean): string[] {
  if (member === undefined) return ['', ''];
  const share = member.member?.startsWith('joining') === true ? '-' : percent(member.share);
  const cells = [member.member ?? '', moving ? `${share} -> ${percent(member.futureShare)}` : share];
  const receiving = member.receiving;
  if (receiving === undefined) return cells;
  if (receiving === null) return [...cells, 'not streaming yet'];
  return [
    ...cells,
    receiving.done === true
      ? `streamed ${mib(receiving.bytes)}`
      : `streaming ${receiving.rangesDone}/${receiving.ranges} ranges, ${mib(receiving.bytes)}, ~${mib(receiving.bytesLeft)} left`,
  ];
}

function percent(share: number | undefined): string {
  return share === undefined ? '-' : `${(share * 100).toFixed(1)}%`;
}

function mib(bytes: unknown): string {
  return `${(Number(bytes) / 1048576).toFixed(1)} MiB`;
}

/** The figures an operator looks at first; --json has the rest. */
function summary(answer: NodeStatus): string {
  const store = record(answer.store);
  const requests = record(answer.requests);
  const engine = record(store.engine);
  const hints = record(store.hints);
  const memory = record(answer.memory);
  const skews = record(record(store.clockSkew).peers);
  const rows: string[][] = [
    ['node', `${answer.node} (${answer.ready ? 'ready' : 'not ready'})`],
    ['process', `pid ${answer.pid}, up ${duration(Number(answer.uptimeMs))}, rss ${bytes(memory.rss)}`],
    ['cluster', `${answer.clusterSize} node${answer.clusterSize === 1 ? '' : 's'}`],
    ['requests', ['get', 'put', 'delete', 'range'].map((op) => `${op} ${requests[op] ?? 0}`).join(', ')],
  ];
  for (const [url, state] of Object.entries(record(store.peers))) {
    const skew = record(skews[url]);
    const measured = skew.skewMs === undefined ? '' : `, clock skew ${skew.skewMs} ms, rtt ${skew.rttMs} ms`;
    rows.push([rows.length === 4 ? 'peers' : '', `${url} ${String(state)}${measured}`]);
  }
  if (store.hints !== undefined) {
    // Per peer {"entries","bytes"} (a bare number taken as entries).
    let entries = 0;
    let pendingBytes = 0;
    for (const perPeer of Object.values(record(hints.pending))) {
      const counts = typeof perPeer === 'number' ? { entries: perPeer } : record(perPeer);
      entries += finite(counts.entries);
      pendingBytes += finite(counts.bytes);
    }
    rows.push([
      'hints',
      `${entries} pending (${bytes(pendingBytes)}), ${hints.delivered ?? 0} delivered, ${hints.dropped ?? 0} dropped, ${hints.tooOld ?? 0} too old`,
    ]);
  }
  if (store.engine !== undefined) {
    const levels = Array.isArray(engine.tablesPerLevel) ? engine.tablesPerLevel.join('/') : '?';
    rows.push([
      'engine',
      `${engine.writes ?? 0} writes, ${engine.reads ?? 0} reads, memtable ${bytes(engine.memtableBytes)}, ` +
        `tables ${levels} (${bytes(engine.tableBytes)})`,
    ]);
  }
  return table(rows);
}

/**
 * Rows as aligned columns, one line each. Every cell holds text the node
 * sent (URLs, states, counts read from its JSON): its control characters
 * are escaped (terminal-safe.ts) before the columns are measured.
 */
function table(cells: readonly (readonly string[])[]): string {
  const rows = cells.map((row) => row.map(terminalSafe));
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

/** A count from the document, 0 if it is not a finite number. */
function finite(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function bytes(value: unknown): string {
  const n = Number(value);
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  let scaled = n;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${scaled.toFixed(1)} ${units[unit]}`;
}

function duration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}
