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
 */
import { resolve } from 'node:path';
import { recordBirthVersion } from '../cluster/antientropy/index.js';
import { HybridClock } from '../cluster/clock.js';
import { limits } from '../config/limits.js';
import { nodeVfs, restoreSnapshot } from '../storage/index.js';
import { errorMessage, RingkvError } from '../util/errors.js';
import { parseCommandLine } from './args.js';
import { URL_DEFAULT } from './client-command.js';
import { type Command, EXIT } from './command.js';

const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

export const snapshot: Command = {
  usage: `Usage: ringkv snapshot --out DIR [--url URL]

Asks the node to write a consistent snapshot of its data into DIR, a
directory on the node's machine that is absent or empty: its tables
(hard-linked on the same file system), a MANIFEST and SHA256SUMS (check it
with sha256sum -c). It holds every write the node acknowledged before the
command; the node keeps serving meanwhile. Prints what was written as JSON.

  --out DIR        where the snapshot goes (made absolute)
  --url URL        the node (default ${URL_DEFAULT})

Exit: 0 done, 2 bad usage or a directory the node refused, 3 node unavailable, 4 other failures.
`,
  run: async (args) => {
    const line = parseCommandLine(args, {
      flags: ['out', 'url'],
      positionals: { min: 0, max: 0, synopsis: 'ringkv snapshot' },
    });
    if (line.flags.help) {
      process.stdout.write(snapshot.usage);
      return;
    }
    if (line.flags.out === undefined) throw new RingkvError('RINGKV_CONFIG', 'Missing --out DIR');
    const base = (line.flags.url ?? URL_DEFAULT).split(',')[0]!.replace(/\/+$/, '');
    const target = `${base}/v0/admin/snapshot?dir=${encodeURIComponent(resolve(line.flags.out))}`;
    let answer: Response;
    try {
      answer = await fetch(target, { method: 'POST', signal: AbortSignal.timeout(SNAPSHOT_TIMEOUT_MS) });
    } catch (err) {
      process.stderr.write(
        `ringkv: Unavailable: ${base}: ${errorMessage((err as { cause?: unknown }).cause ?? err)}\n`,
      );
      process.exitCode = EXIT.unavailable;
      return;
    }
    const text = await answer.text();
    if (answer.status === 200) {
      process.stdout.write(`${text}\n`);
      process.exitCode = EXIT.ok;
      return;
    }
    process.stderr.write(`ringkv: Snapshot failed: ${answer.status} ${text.split('\n')[0]}\n`);
    process.exitCode =
      answer.status >= 400 && answer.status < 500
        ? EXIT.usage
        : answer.status === 503 || answer.status === 504
          ? EXIT.unavailable
          : EXIT.failed;
  },
};

export const restore: Command = {
  usage: `Usage: ringkv restore --snapshot DIR --data DIR

Builds a node's data directory (absent or empty) from a snapshot, after
checking every file of it against its SHA256SUMS; a damaged or incomplete
snapshot is refused, naming the file, and nothing is written. Then start the
node on that directory with ringkv serve.

  --snapshot DIR   the snapshot (from ringkv snapshot)
  --data DIR       the data directory to build

Exit: 0 done, 1 the snapshot is damaged or cannot be read, 2 bad usage.
`,
  run: async (args) => {
    const line = parseCommandLine(args, {
      flags: ['snapshot', 'data'],
      positionals: { min: 0, max: 0, synopsis: 'ringkv restore' },
    });
    if (line.flags.help) {
      process.stdout.write(restore.usage);
      return;
    }
    if (line.flags.snapshot === undefined) throw new RingkvError('RINGKV_CONFIG', 'Missing --snapshot DIR');
    if (line.flags.data === undefined) throw new RingkvError('RINGKV_CONFIG', 'Missing --data DIR');
    const data = resolve(line.flags.data);
    let info: { tables: number; bytes: number };
    try {
      info = await restoreSnapshot(nodeVfs, resolve(line.flags.snapshot), data, limits.levelCount);
    } catch (err) {
      const usage = err instanceof RingkvError && err.code === 'RINGKV_BAD_REQUEST';
      process.stderr.write(`ringkv: ${errorMessage(err).split('\n')[0]}\n`);
      process.exitCode = usage ? EXIT.usage : EXIT.notFound;
      return;
    }
    await recordBirthVersion(data, new HybridClock().now());
    process.stdout.write(`ringkv: restored ${info.tables} tables (${info.bytes} bytes) into ${data}\n`);
    process.exitCode = EXIT.ok;
  },
};
