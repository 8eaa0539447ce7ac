/**
 * `ringkv decommission`, `ringkv remove` and `ringkv cancel`: an operator's
 * changes to the membership. They speak the internode protocol (a MOVE
 * message), so that with a cluster secret only those who know it can change
 * the cluster; the secret comes from --cluster-secret or RINGKV_CLUSTER_SECRET.
 *
 * decommission and remove wait until the move is complete (the ring flipped),
 * printing the new owners' streaming progress as it goes; --no-wait returns
 * once the move has started. A move whose node dies halfway stays under
 * way, the cluster serving meanwhile: start the node again to resume it, or
 * cancel it. Run again, decommission and remove take up the same move under
 * way, or say the node was removed already (exit 0), rather than refuse it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  encodeMoveRequest,
  MoveKind,
  type MoveProgressAnswer,
  type ReceiveProgress,
} from '../cluster/membership/index.js';
import { createTransport, type MembershipLinks } from '../cluster/transport/index.js';
import { nodeAddress } from '../config/options.js';
import { errorMessage, isRingkvError, RingkvError } from '../util/errors.js';
import { parseCommandLine } from './args.js';
import { type Command, EXIT } from './command.js';
import { complain, terminalSafe } from './terminal-safe.js';

const WAIT_MS_DEFAULT = 30 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 10_000;
const POLL_MS = 1000;
/** How long a refused change waits for the node's /v0/status, to say why. */
const STATUS_TIMEOUT_MS = 2000;

const COMMON_USAGE = `  --cluster-secret TEXT  the cluster's secret, if it has one (or RINGKV_CLUSTER_SECRET)
  --timeout MS           give up waiting after MS milliseconds (default ${WAIT_MS_DEFAULT}); the move goes on
  --no-wait              return once the move has started

Run again (after --timeout or --no-wait), it waits for the same move under
way, or says the node is removed already (exit 0).

Exit: 0 done, 2 bad usage or a change the cluster refused (another move under
way, not a member, a wrong secret, a single node with no cluster, ...), 3 the node
could not be reached or the wait timed out, 4 any other failure.`;

export const decommission = moveCommand({
  kind: MoveKind.Decommission,
  usage: `Usage: ringkv decommission --url URL [flags]

Takes the node at URL out of the cluster for good: it streams its ranges to
their new owners, the ring flips without it, and the node exits 0. Waits for
all of that, printing progress.

  --url URL              the node to take out
${COMMON_USAGE}
`,
  positionals: { min: 0, max: 0, synopsis: 'ringkv decommission --url URL' },
  argument: (url) => url,
  done: (answer, url) => answer.members[url] === 'removed',
});

export const remove = moveCommand({
  kind: MoveKind.Remove,
  usage: `Usage: ringkv remove --url ANY_MEMBER DEAD_URL [flags]

Takes a dead node out of the cluster: its ranges are rebuilt on their new
owners from the other replicas, then the ring flips without it. Refused if
the node still answers (decommission it instead). Waits, printing progress.

  --url URL              any live member, which makes the change
${COMMON_USAGE}
`,
  positionals: { min: 1, max: 1, synopsis: 'ringkv remove --url ANY_MEMBER DEAD_URL' },
  argument: (_url, dead) => dead!,
  done: (answer, _url, dead) => answer.members[dead!] === 'removed',
});

export const cancel = moveCommand({
  kind: MoveKind.Cancel,
  usage: `Usage: ringkv cancel --url ANY_MEMBER [flags]

Gives up the move under way: joining nodes are removed (they stop), leaving
ones are normal members again. Data already streamed stays where it is.

  --url URL              any live member, which makes the change
  --cluster-secret TEXT  the cluster's secret, if it has one (or RINGKV_CLUSTER_SECRET)
`,
  positionals: { min: 0, max: 0, synopsis: 'ringkv cancel --url ANY_MEMBER' },
  argument: () => '',
  done: undefined,
});

interface MoveCommandSpec {
  readonly kind: MoveKind;
  readonly usage: string;
  readonly positionals: { readonly min: number; readonly max: number; readonly synopsis: string };
  readonly argument: (url: string, positional: string | undefined) => string;
  /** Whether the move is complete, from the asked node's answer; undefined: nothing to wait for. */
  readonly done:
    | ((answer: MoveProgressAnswer, url: string, positional: string | undefined) => boolean)
    | undefined;
}

function moveCommand(spec: MoveCommandSpec): Command {
  return {
    usage: spec.usage,
    run: async (args) => {
      // cancel does not wait: --timeout and --no-wait are refused there rather than ignored.
      const waits = spec.done !== undefined;
      const line = parseCommandLine<'url' | 'cluster-secret' | 'timeout', 'no-wait'>(args, {
        flags: waits ? ['url', 'cluster-secret', 'timeout'] : ['url', 'cluster-secret'],
        switches: waits ? ['no-wait'] : [],
        positionals: spec.positionals,
      });
      if (line.flags.help) {
        process.stdout.write(spec.usage);
        return;
      }
      if (line.flags.url === undefined) throw new RingkvError('RINGKV_CONFIG', 'Missing --url');
      const url = nodeAddress(line.flags.url, '--url').url;
      const positional =
        line.positionals[0] === undefined ? undefined : nodeAddress(line.positionals[0], 'DEAD_URL').url;
      const waitMs = waitFlag(line.flags.timeout);
      const secret = line.flags['cluster-secret'] ?? process.env.RINGKV_CLUSTER_SECRET;
      const transport = createTransport({ kind: 'frame', secret: secret === '' ? undefined : secret });
      try {
        const started = JSON.parse(
          (
            await transport.move(
              url,
              encodeMoveRequest(spec.kind, spec.argument(url, positional)),
              Date.now() + REQUEST_TIMEOUT_MS,
            )
          ).toString('utf8'),
        ) as MoveStarted;
        say(startedLine(started, spec.argument(url, positional)));
        process.exitCode =
          spec.done === undefined || line.switches['no-wait'] || started.already === 'done'
            ? EXIT.ok
            : await waitDone(transport, url, (answer) => spec.done!(answer, url, positional), waitMs);
      } catch (err) {
        const refusal = await refusalOf(err, url, spec.kind);
        complain(refusal ?? errorMessage(err));
        process.exitCode =
          refusal !== undefined || hasCause(err, 'RINGKV_BAD_REQUEST') || hasCause(err, 'RINGKV_UNAUTHORIZED')
            ? EXIT.usage
            : isRingkvError(err, 'RINGKV_UNAVAILABLE') || isRingkvError(err, 'RINGKV_TIMEOUT')
              ? EXIT.unavailable
              : EXIT.failed;
      } finally {
        await transport.close();
      }
    },
  };
}

/** The node's answer to a change; `already` when the same change was made before (a command run again). */
interface MoveStarted {
  readonly epoch: string;
  readonly move?: string | null;
  readonly cancelled?: string;
  readonly already?: 'under way' | 'done';
}

function startedLine(started: MoveStarted, leaving: string): string {
  if (started.cancelled !== undefined) return `move cancelled (epoch ${started.epoch}): ${started.cancelled}`;
  if (started.already === 'done') return `${leaving} already removed (epoch ${started.epoch})`;
  if (started.already === 'under way')
    return `move already under way (epoch ${started.epoch}): ${started.move}`;
  return `move started (epoch ${started.epoch}): ${started.move}`;
}

/** Whether `err`, or an error it was caused by (the transport wraps them: "Peer ... is down: ..."), has `code`. */
function hasCause(err: unknown, code: Parameters<typeof isRingkvError>[1]): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; depth++) {
    if (isRingkvError(e, code)) return true;
    e = (e as { cause?: unknown } | null)?.cause;
  }
  return false;
}

/**
 * When the node at URL answered over HTTP but refused the internode upgrade
 * (RINGKV_PROTOCOL under the transport's "is down"), the reason the change
 * was refused, from its /v0/status: a node on its own (started without
 * --cluster or --join) has no membership to change. Undefined when that is
 * not what happened: a node that does not answer, or answers 503 while it
 * starts or stops, is unavailable.
 */
async function refusalOf(err: unknown, url: string, kind: MoveKind): Promise<string | undefined> {
  if (!hasCause(err, 'RINGKV_PROTOCOL')) return undefined;
  let status: { store?: { kind?: unknown } };
  try {
    const answer = await fetch(`${url}/v0/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    if (answer.status !== 200) return undefined;
    status = (await answer.json()) as { store?: { kind?: unknown } };
  } catch {
    return undefined;
  }
  if (status?.store?.kind === 'local') {
    const why =
      kind === MoveKind.Decommission
        ? 'it cannot be decommissioned (stop it instead)'
        : kind === MoveKind.Cancel
          ? 'there is no move to cancel'
          : 'it has no members to remove';
    return `Refused: ${url} is a single node with no cluster (started without --cluster or --join): ${why}`;
  }
  return `Refused: ${url} does not take membership changes (${errorMessage(err)})`;
}

/** Polls the node until the move is complete, printing the new owners' progress when it changes. */
async function waitDone(
  transport: MembershipLinks,
  url: string,
  done: (answer: MoveProgressAnswer) => boolean,
  waitMs: number,
): Promise<number> {
  const deadlineMs = Date.now() + waitMs;
  let last = '';
  let unreachable: string | undefined;
  /** The other members the last answer listed: asked when `url` does not answer. */
  let others: string[] = [];
  while (Date.now() < deadlineMs) {
    try {
      // The node asked may be gone for good (a leaving node stopped halfway, then given up as a
      // source and removed), while the move completes: any member can tell.
      const answer = await progressOfAny(transport, url, others);
      others = Object.entries(answer.members)
        .filter(([member, state]) => member !== url && state !== 'removed')
        .map(([member]) => member);
      unreachable = undefined;
      if (done(answer)) {
        say(`move complete (epoch ${answer.epoch})`);
        return EXIT.ok;
      }
      if (answer.move === null) {
        // Not done and nothing under way: the move was cancelled, or another change made at the
        // same moment won over it. Waiting longer would only wait out the timeout.
        complain(
          `Refused: no move is under way on ${url} (epoch ${answer.epoch}) and the change did not happen: it was cancelled, or lost to another change made at the same time; run the command again`,
        );
        return EXIT.usage;
      }
      const line = await describeProgress(transport, answer);
      if (line !== last) say(line);
      last = line;
    } catch (err) {
      unreachable = errorMessage(err);
    }
    await sleep(POLL_MS);
  }
  complain(
    `the move is not complete after ${waitMs} ms${unreachable === undefined ? '' : ` (${url}: ${unreachable})`}; it goes on: run the command again to wait for it, restart any node of it that died, or cancel it (ringkv cancel)`,
  );
  return EXIT.unavailable;
}

/** "streaming: 3/6 ranges, 12.0 MiB streamed, ~4.1 MiB left" over every new owner of the move. */
async function describeProgress(transport: MembershipLinks, answer: MoveProgressAnswer): Promise<string> {
  const states = Object.entries(answer.members);
  const leaving = states.some(([, state]) => state === 'leaving');
  const owners = states
    .filter(([, state]) => state === 'joining' || (leaving && state === 'normal'))
    .map(([url]) => url);
  const progress = await Promise.all(
    owners.map((owner) =>
      progressOf(transport, owner).then(
        (a) => a.receiving,
        () => null,
      ),
    ),
  );
  const known = progress.filter((p): p is ReceiveProgress => p !== null);
  const sum = (pick: (p: ReceiveProgress) => number) => known.reduce((total, p) => total + pick(p), 0);
  return (
    `${answer.move ?? 'no move under way'}: streaming ${sum((p) => p.rangesDone)}/${sum((p) => p.ranges)} ranges, ` +
    `${mib(sum((p) => p.bytes))} streamed, ~${mib(sum((p) => p.bytesLeft))} left` +
    (known.length < owners.length ? ` (${owners.length - known.length} new owner(s) not streaming yet)` : '')
  );
}

/** The progress answer of `url`, or failing that of the first of `others` that answers; rejects with `url`'s error. */
async function progressOfAny(
  transport: MembershipLinks,
  url: string,
  others: readonly string[],
): Promise<MoveProgressAnswer> {
  try {
    return await progressOf(transport, url);
  } catch (err) {
    for (const other of others) {
      try {
        return await progressOf(transport, other);
      } catch {
        // The next one.
      }
    }
    throw err;
  }
}

async function progressOf(transport: MembershipLinks, url: string): Promise<MoveProgressAnswer> {
  const body = await transport.move(
    url,
    encodeMoveRequest(MoveKind.Progress),
    Date.now() + REQUEST_TIMEOUT_MS,
  );
  return JSON.parse(body.toString('utf8')) as MoveProgressAnswer;
}

function waitFlag(text: string | undefined): number {
  if (text === undefined) return WAIT_MS_DEFAULT;
  if (!/^[1-9][0-9]{0,9}$/.test(text)) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Bad --timeout: expected milliseconds, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/**
 * One line on stdout. Lines quote the nodes' answers (the move, the epoch):
 * their control characters are escaped (terminal-safe.ts), a newline too.
 */
function say(line: string): void {
  process.stdout.write(`ringkv: ${terminalSafe(line)}\n`);
}
