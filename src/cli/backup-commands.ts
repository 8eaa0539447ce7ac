/**
 * `ringkv snapshot` and `ringkv restore`: a node's data copied out while it
 * serves, and a data directory built back from such a copy.
 *
 *   ringkv snapshot --url http://127.0.0.1:8080 --out /backups/node0-monday
 *   ringkv restore --snapshot /backups/node0-monday --data ./data/node-0
 *   ringkv serve --url http://127.0.0.1:8080 --data ./data/node-0 --cluster ...
 *
 * The snapshot is written by the node, on its own machine (`--out` is a path
 * there; made absolute here). A restored directory is marked as born at the
 * restore (cluster/antientropy/birth.ts): in a cluster, anti-entropy then
 * brings back from the other replicas what was written after the snapshot.
 *
 * That holds only while the other replicas still keep the tombstones of keys
 * deleted since the snapshot, that is, for a snapshot younger than the
 * tombstone grace (limits.tombstoneGraceMs, which every node uses) by a
 * margin (AGE_MAX_MS): past it the restored node's old values of those keys
 * would spread back. `restore` refuses an older snapshot unless given
 * --force, for the cases where no
 * live replica is left to spread to (every node of a cluster restored from
 * snapshots taken together, or a node of its own).
 *
 * A snapshot dated in the future of the restoring machine's clock by more
 * than the cluster's clock skew bound (--max-clock-skew, as given to serve)
 * cannot be judged against that age: the clock that dated it was wrong, by
 * an unknown amount. It is refused too, unless --force.
 */
import { resolve } from 'node:path';
import { birthFile } from '../cluster/antientropy/index.js';
import { HybridClock } from '../cluster/clock.js';
import { limits } from '../config/limits.js';
import { clockSkewMaxMs, nodeAddress } from '../config/options.js';
import { nodeVfs, restoreSnapshot } from '../storage/index.js';
import { errorMessage, RingkvError } from '../util/errors.js';
import { parseCommandLine } from './args.js';
import { positiveInteger, TIMEOUT_MS_MAX, URL_DEFAULT } from './client-command.js';
import { type Command, EXIT } from './command.js';
import { complain, jsonSafe } from './terminal-safe.js';

/**
 * How long `snapshot` waits for the node's answer by default. Not the client
 * commands' 10 s: the node answers once the snapshot is written, and a big
 * node whose tables are copied across file systems takes minutes. A client
 * that gives up does not stop the node's snapshot.
 */
const SNAPSHOT_TIMEOUT_MS_DEFAULT = 10 * 60_000;

const HOUR_MS = 60 * 60 * 1000;
/** The tombstone grace of every node (it is no flag). */
const GRACE_HOURS = limits.tombstoneGraceMs / HOUR_MS;
/**
 * The oldest snapshot restored without --force: the grace less the margin
 * hints keep (limits.hintGraceMarginMsMax). A delete made after the snapshot
 * began may carry a version up to the clock skew older than it (another
 * coordinator's clock), and the restored node first compares with a
 * replica some time after the restore: at the grace itself, that replica
 * may have dropped the tombstone already, and the old value would spread.
 */
const AGE_MAX_MS =
  limits.tombstoneGraceMs - Math.min(limits.tombstoneGraceMs / 10, limits.hintGraceMarginMsMax);
const AGE_MAX_HOURS = +(AGE_MAX_MS / HOUR_MS).toFixed(2);
const AGE_MAX = `${AGE_MAX_HOURS} h (the tombstone grace, ${GRACE_HOURS} h, less a margin for clock skew and start-up)`;

export const snapshot: Command = {
  usage: `Usage: ringkv snapshot --out DIR [--url URL] [--timeout MS]

Asks the node to write a consistent snapshot of its data into DIR, a
directory on the node's machine that is absent or empty, and outside the
node's own data directory (symlinks and .. resolved): its tables
(hard-linked on the same file system), a MANIFEST, SNAPSHOT (when it was
taken) and SHA256SUMS (check it with sha256sum -c). It holds every write the node acknowledged before the
command; the node keeps serving meanwhile. Prints what was written as JSON.

  --out DIR        where the snapshot goes (made absolute)
  --url URL        the node, one http:// URL (default ${URL_DEFAULT})
  --timeout MS     give up waiting for the node's answer after MS milliseconds
                   (default ${SNAPSHOT_TIMEOUT_MS_DEFAULT}, 10 minutes, as a big node's snapshot
                   takes a while; at most ${TIMEOUT_MS_MAX}); the node may still finish it

Exit: 0 done, 2 bad usage or a directory the node refused (one not empty or
inside its data directory), 3 node unavailable
or --timeout passed, 4 other failures (a 500, an answer cut short, a 200 that
is not a snapshot report).
`,
  run: async (args) => {
    const line = parseCommandLine(args, {
      flags: ['out', 'url', 'timeout'],
      positionals: { min: 0, max: 0, synopsis: 'ringkv snapshot' },
    });
    if (line.flags.help) {
      process.stdout.write(snapshot.usage);
      return;
    }
    // An empty path would resolve to the working directory: missing, as `serve --data ''` is.
    if (!line.flags.out) throw new RingkvError('RINGKV_CONFIG', 'Missing --out DIR');
    // One node: a snapshot is of the node asked, so there is nothing to fail over to.
    const url = line.flags.url ?? URL_DEFAULT;
    if (url.includes(',')) {
      throw new RingkvError('RINGKV_CONFIG', `Bad --url: a snapshot is of one node, got a list: ${url}`);
    }
    const base = nodeAddress(url, '--url').url;
    // A longer timer would fire at once (Node.js clamps it to 1 ms).
    const timeoutMs =
      positiveInteger(line.flags.timeout, 'timeout', TIMEOUT_MS_MAX) ?? SNAPSHOT_TIMEOUT_MS_DEFAULT;
    const dir = resolve(line.flags.out);
    const target = `${base}/v0/admin/snapshot?dir=${encodeURIComponent(dir)}`;
    const signal = AbortSignal.timeout(timeoutMs);
    const timedOut = (): void => {
      process.stderr.write(
        `ringkv: Timed out: ${base} did not answer within ${timeoutMs} ms; it may still be writing the snapshot into ${dir}\n`,
      );
      process.exitCode = EXIT.unavailable;
    };
    let answer: Response;
    try {
      answer = await fetch(target, { method: 'POST', signal });
    } catch (err) {
      if (signal.aborted) return timedOut();
      complain(`Unavailable: ${base}: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`);
      process.exitCode = EXIT.unavailable;
      return;
    }
    let text: string;
    try {
      text = await answer.text();
    } catch (err) {
      if (signal.aborted) return timedOut();
      complain(
        `Failed: ${base} answered ${answer.status} but the answer was cut short: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`,
      );
      process.exitCode = EXIT.failed;
      return;
    }
    if (answer.status === 200) {
      const report = snapshotReport(text);
      if (report === undefined) {
        // Another server on the port: saying "done" would leave the operator with no backup.
        complain(
          `Failed: ${base} answered 200 but not with a snapshot report: ${JSON.stringify(text.split('\n')[0]!.slice(0, 200)).slice(1, -1)}`,
        );
        process.exitCode = EXIT.failed;
        return;
      }
      // Written again rather than as the node sent it (the same bytes for a node's compact JSON),
      // so that what reaches the terminal has no control character: JSON whitespace may hold CR.
      process.stdout.write(`${jsonSafe(JSON.stringify(report))}\n`);
      process.exitCode = EXIT.ok;
      return;
    }
    complain(`Snapshot failed: ${answer.status} ${text.split('\n')[0]}`);
    process.exitCode =
      answer.status >= 400 && answer.status < 500
        ? EXIT.usage
        : answer.status === 503 || answer.status === 504
          ? EXIT.unavailable
          : EXIT.failed;
  },
};

export const restore: Command = {
  usage: `Usage: ringkv restore --snapshot DIR --data DIR [--max-clock-skew MS] [--force]

Builds a node's data directory (absent or empty) from a snapshot, after
checking every file of it against its SHA256SUMS; a damaged or incomplete
snapshot is refused, naming the file, and nothing is written. Then start the
node on that directory with ringkv serve.

A snapshot older than ${AGE_MAX_HOURS} h is refused (the tombstone grace, ${GRACE_HOURS} h, less
a margin for clock skew and the node's start): restored into one node of a
live cluster, it could bring back keys deleted since. Start the node soon after.
A snapshot dated more than the cluster's clock skew bound in the future of
this machine's clock is refused too: its age cannot be judged.

  --snapshot DIR        the snapshot (from ringkv snapshot)
  --data DIR            the data directory to build
  --max-clock-skew MS   the cluster's clock skew bound, as given to serve
                        (default ${limits.clockSkewMaxMs}): how far in the future a snapshot may be dated
  --force               restore a snapshot older than that, or dated further
                        in the future: for a whole cluster restored from
                        snapshots taken together, or a node of its own, where
                        no live replica holds newer deletes

Exit: 0 done, 1 the snapshot is damaged or cannot be read, 2 bad usage (a
--data that is not empty or cannot be made a directory, a snapshot older
than ${AGE_MAX_HOURS} h or dated in the future without --force).
`,
  run: async (args) => {
    const line = parseCommandLine(args, {
      flags: ['snapshot', 'data', 'max-clock-skew'],
      switches: ['force'],
      positionals: { min: 0, max: 0, synopsis: 'ringkv restore' },
    });
    if (line.flags.help) {
      process.stdout.write(restore.usage);
      return;
    }
    // Empty paths are missing ones, not the working directory.
    if (!line.flags.snapshot) throw new RingkvError('RINGKV_CONFIG', 'Missing --snapshot DIR');
    if (!line.flags.data) throw new RingkvError('RINGKV_CONFIG', 'Missing --data DIR');
    const data = resolve(line.flags.data);
    const snapshotDir = resolve(line.flags.snapshot);
    const skewMaxMs = clockSkewMaxMs(line.flags['max-clock-skew']);
    const admit = (createdMs: number | undefined): void =>
      admitSnapshotAge(snapshotDir, createdMs, { force: line.switches.force, skewMaxMs });
    let info: { tables: number; bytes: number };
    try {
      info = await restoreSnapshot(nodeVfs, snapshotDir, data, limits.levelCount, {
        files: [birthFile(new HybridClock().now())],
        admit,
      });
    } catch (err) {
      const usage = err instanceof RingkvError && err.code === 'RINGKV_BAD_REQUEST';
      // The message may name a file of the snapshot: escaped as the node's text is.
      complain(errorMessage(err).split('\n')[0]!);
      process.exitCode = usage ? EXIT.usage : EXIT.notFound;
      return;
    }
    process.stdout.write(`ringkv: restored ${info.tables} tables (${info.bytes} bytes) into ${data}\n`);
    process.exitCode = EXIT.ok;
  },
};

/** A 200's body as the node's account of a snapshot written, {"dir","tables","bytes",...}; undefined if it is not one. */
function snapshotReport(text: string): Record<string, unknown> | undefined {
  let report: unknown;
  try {
    report = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof report !== 'object' || report === null) return undefined;
  const { dir, tables, bytes } = report as Record<string, unknown>;
  return typeof dir === 'string' && Number.isInteger(tables) && Number.isInteger(bytes)
    ? (report as Record<string, unknown>)
    : undefined;
}

/**
 * Refuses (RINGKV_BAD_REQUEST: exit 2) a snapshot older than AGE_MAX_MS,
 * or dated more than `skewMaxMs` in the future, unless `force`; warns, on
 * one line, about one whose age is unknown (written before snapshots
 * recorded it) or that was restored by force.
 */
function admitSnapshotAge(
  dir: string,
  createdMs: number | undefined,
  options: { readonly force: boolean; readonly skewMaxMs: number },
): void {
  const force = options.force;
  if (createdMs === undefined) {
    process.stderr.write(
      `ringkv: warning: ${dir} does not record when it was taken (an older snapshot), so its age is unknown: restore one node of a live cluster only from a snapshot younger than ${AGE_MAX}\n`,
    );
    return;
  }
  const nowMs = Date.now();
  const ageMs = nowMs - createdMs;
  if (-ageMs > options.skewMaxMs) {
    // The clock that dated it was ahead by an unknown amount: its true age may be past AGE_MAX_MS.
    const ahead = `taken ${new Date(createdMs).toISOString()}, ${-ageMs} ms in the future of this machine's clock (${new Date(nowMs).toISOString()}), more than the ${options.skewMaxMs} ms clock skew bound (--max-clock-skew)`;
    if (force) {
      process.stderr.write(
        `ringkv: warning: ${dir} was ${ahead}, so its age is unknown; restored as --force asks\n`,
      );
      return;
    }
    throw new RingkvError(
      'RINGKV_BAD_REQUEST',
      `Snapshot ${dir} was ${ahead}: the clock that dated it, or this one, is wrong, so whether it is younger than ${AGE_MAX} cannot be told; fix the clock, or --force restores it for a whole cluster restored from snapshots taken together (or a node of its own)`,
    );
  }
  if (ageMs <= AGE_MAX_MS) return;
  const age = `${(ageMs / HOUR_MS).toFixed(1)} h old (taken ${new Date(createdMs).toISOString()})`;
  if (force) {
    process.stderr.write(
      `ringkv: warning: ${dir} is ${age}, older than ${AGE_MAX}; restored as --force asks\n`,
    );
    return;
  }
  throw new RingkvError(
    'RINGKV_BAD_REQUEST',
    `Snapshot ${dir} is ${age}, older than ${AGE_MAX}: restored into one node of a live cluster it could bring back keys deleted since; --force restores it for a whole cluster restored from snapshots taken together (or a node of its own), else start the node empty and let the cluster fill it`,
  );
}
