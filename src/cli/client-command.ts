/**
 * What the commands that talk to a node share: the connection flags, a
 * RingkvClient made from them, numbers checked as flags, stdout written with
 * back-pressure, and errors turned into one line on stderr and an exit code
 * (command.ts EXIT). Usage errors are thrown as RingkvError('RINGKV_CONFIG')
 * for main.ts to report (exit 2).
 */
import { once } from 'node:events';
import {
  BadRequestError,
  type ReplicaOptions,
  RingkvClient,
  TimeoutError,
  UnavailableError,
} from '../client/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../util/errors.js';
import { type CommandLine, type CommandLineSpec, parseCommandLine } from './args.js';
import { type Command, EXIT } from './command.js';
import { terminalSafe } from './terminal-safe.js';

export const URL_DEFAULT = 'http://127.0.0.1:8080';
const TIMEOUT_MS_DEFAULT = 10_000;
/** The longest --timeout: the longest delay a Node.js timer holds (2^31 - 1 ms, about 24.8 days). */
export const TIMEOUT_MS_MAX = 2 ** 31 - 1;

/** Help lines for the flags every client command takes. */
export const CONNECTION_FLAGS_USAGE = `  --url URL,...    the node to ask (default ${URL_DEFAULT}); with several, each in turn
                   while one refuses the connection or answers 503
  --timeout MS     give up after MS milliseconds (default ${TIMEOUT_MS_DEFAULT}, at most ${TIMEOUT_MS_MAX})`;

/** Help lines for --ack and --from. */
export const REPLICA_FLAGS_USAGE = `  --ack A          replicas that must answer (default: a quorum of --from)
  --from F         replicas of the key (default: the cluster's size)`;

export const EXIT_CODES_USAGE = `Exit: 0 done, 1 not found (get only), 2 bad usage or a request the node refused
as bad (400, 413, 414), 3 unavailable (connection refused, 503, 504, timeout), 4 any
other failure (another status, an answer that cannot be read).`;

const CONNECTION_FLAGS = ['url', 'timeout'] as const;
type ConnectionFlag = (typeof CONNECTION_FLAGS)[number];

export interface ClientCommandSpec<Name extends string, Switch extends string>
  extends Omit<CommandLineSpec<Name, Switch>, 'positionals'> {
  readonly usage: string;
  readonly positionals: NonNullable<CommandLineSpec<Name, Switch>['positionals']>;
  /** Does the command's work; resolves with its exit code. */
  readonly run: (client: RingkvClient, line: CommandLine<Name | ConnectionFlag, Switch>) => Promise<number>;
}

export function clientCommand<Name extends string, Switch extends string = never>(
  spec: ClientCommandSpec<Name, Switch>,
): Command {
  return {
    usage: spec.usage,
    run: async (args) => {
      const line = parseCommandLine<Name | ConnectionFlag, Switch>(args, {
        flags: [...CONNECTION_FLAGS, ...spec.flags],
        ...(spec.switches === undefined ? {} : { switches: spec.switches }),
        positionals: spec.positionals,
      });
      if (line.flags.help) {
        process.stdout.write(spec.usage);
        return;
      }
      const client = new RingkvClient({
        nodes: line.flags.url ?? URL_DEFAULT,
        timeoutMs: positiveInteger(line.flags.timeout, 'timeout', TIMEOUT_MS_MAX) ?? TIMEOUT_MS_DEFAULT,
      });
      // A reader that goes away (`ringkv scan a | head -1`) ends the command quietly.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') process.stderr.write(`ringkv: Cannot write the output: ${err.message}\n`);
        process.exit(err.code === 'EPIPE' ? EXIT.ok : EXIT.failed);
      });
      try {
        process.exitCode = await spec.run(client, line);
      } catch (err) {
        if (isRingkvError(err, 'RINGKV_CONFIG')) throw err;
        process.stderr.write(`ringkv: ${describeFailure(err)}\n`);
        process.exitCode = exitCodeOf(err);
      }
    },
  };
}

/** --ack and --from as request options. */
export function replicaOptions(flags: {
  readonly ack?: string | undefined;
  readonly from?: string | undefined;
}): {
  ack?: number;
  from?: number;
} {
  const ack = positiveInteger(flags.ack, 'ack');
  const from = positiveInteger(flags.from, 'from');
  return {
    ...(ack === undefined ? {} : { ack }),
    ...(from === undefined ? {} : { from }),
  } satisfies ReplicaOptions;
}

/**
 * Refuses (exit 2) a range that can hold no key: an END at or before START
 * (as bytes, the order keys have), an empty END among them. Leaving END out
 * reads to the last key; an END that selects nothing is a mistake, not a
 * request for nothing. `names`: how the command calls them.
 */
export function checkRange(start: string, end: string | undefined, names: readonly [string, string]): void {
  if (end === undefined || Buffer.compare(Buffer.from(start), Buffer.from(end)) < 0) return;
  const [startName, endName] = names;
  throw new RingkvError(
    'RINGKV_CONFIG',
    end === ''
      ? `Bad ${endName}: empty (leave it out to read to the last key)`
      : `Bad ${endName}: ${JSON.stringify(end)} is not after ${startName} ${JSON.stringify(start)}, so the range holds no key`,
  );
}

/**
 * A flag's value as a positive integer in canonical decimal, as the server
 * takes ack, from and ttl; with `max`, at most that.
 */
export function positiveInteger(text: string | undefined, flag: string, max?: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]{0,14}$/.test(text)) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Bad --${flag}: expected a positive integer, got ${JSON.stringify(text)}`,
    );
  }
  const value = Number(text);
  if (max !== undefined && value > max) {
    throw new RingkvError('RINGKV_CONFIG', `Bad --${flag}: at most ${max}, got ${text}`);
  }
  return value;
}

/** Writes to stdout, waiting while its buffer is full. */
export async function output(data: string | Uint8Array): Promise<void> {
  if (!process.stdout.write(data)) await once(process.stdout, 'drain');
}

/** The exit code of a failed request (EXIT). */
export function exitCodeOf(err: unknown): number {
  if (err instanceof BadRequestError) return EXIT.usage;
  if (err instanceof UnavailableError || err instanceof TimeoutError) return EXIT.unavailable;
  return EXIT.failed;
}

/**
 * One line: what kind of failure, then the error's own message (status,
 * reason, node), its first line, with the control characters of the node's
 * reason escaped (terminal-safe.ts).
 */
export function describeFailure(err: unknown): string {
  const kind =
    err instanceof BadRequestError
      ? 'Bad request'
      : err instanceof UnavailableError
        ? 'Unavailable'
        : err instanceof TimeoutError
          ? 'Timed out'
          : 'Failed';
  return `${kind}: ${terminalSafe(errorMessage(err).split('\n')[0]!)}`;
}
