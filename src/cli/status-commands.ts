/**
 * `ringkv status` and `ringkv ring`: what a node says about itself and the
 * cluster (GET /v0/status), for people (aligned text) or scripts (--json).
 *
 * The ring is not sent by the node: /v0/status lists the members (`cluster`,
 * the `--cluster` URLs) and how this node's links see each (`store.peers`).
 * A key's replicas are computed here with the nodes' own Ring
 * (cluster/ring), which every node builds from the same URL list with the
 * default 4,096 points per node: the same list gives the same replicas.
 */
import type { NodeStatus } from '../client/index.js';
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
    const answer = await client.status();
    await output(switches.json ? `${JSON.stringify(answer, null, 2)}\n` : summary(answer));
    return EXIT.ok;
  },
});

export const ring = clientCommand({
  usage: `Usage: ringkv ring [KEY] [flags]

Prints the cluster's members and their state as the node asked sees them
(up, down, leaving); with KEY, the key's replicas in ring order instead:
the first --from of them hold it.

  --from F         how many replicas to list (default: all members)
  --json           {"node", "members": [{"url", "state"}], "key", "replicas": [...]}
${CONNECTION_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['from'],
  switches: ['json'],
  positionals: { min: 0, max: 1, synopsis: 'ringkv ring [KEY]' },
  run: async (client, { flags, switches, positionals }) => {
    const answer = await client.status();
    const members = membersOf(answer);
    const key = positionals[0];
    const from = positiveInteger(flags.from, 'from') ?? members.length;
    if (from > members.length) {
      throw new RingkvError(
        'RINGKV_CONFIG',
        `Bad --from: ${from} is more than the ${members.length} members`,
      );
    }
    const replicas =
      key === undefined ? undefined : new Ring(answer.cluster).replicas(Buffer.from(key), from);
    if (switches.json) {
      const keyFields = key === undefined ? {} : { key, replicas };
      await output(`${JSON.stringify({ node: answer.node, members, ...keyFields })}\n`);
      return EXIT.ok;
    }
    const stateOf = new Map(members.map((m) => [m.url, m.state]));
    const rows = (replicas ?? members.map((m) => m.url)).map((url, i) => [
      ...(replicas === undefined ? [] : [String(i + 1)]),
      url,
      stateOf.get(url) ?? 'unknown',
      url === answer.node ? '(the node asked)' : '',
    ]);
    await output(table(rows));
    return EXIT.ok;
  },
});

interface Member {
  readonly url: string;
  readonly state: string;
}

/** Every member in ring order (sorted URLs), the node asked `up` (it answered), the others as its links see them. */
function membersOf(answer: NodeStatus): Member[] {
  const peers = (record(answer.store).peers ?? {}) as Record<string, unknown>;
  return [...answer.cluster].sort().map((url) => ({
    url,
    state: url === answer.node ? 'up' : typeof peers[url] === 'string' ? (peers[url] as string) : 'unknown',
  }));
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
    const pending = Object.values(record(hints.pending)).reduce<number>((sum, n) => sum + Number(n), 0);
    rows.push([
      'hints',
      `${pending} pending, ${hints.delivered ?? 0} delivered, ${hints.dropped ?? 0} dropped`,
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

/** Rows as aligned columns, one line each. */
function table(rows: readonly (readonly string[])[]): string {
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
