/**
 * `ringkv export` and `ringkv import`: data moved between clusters as JSON
 * lines, through the client library (the cluster range to read, quorum
 * writes to store), so that both clusters keep serving meanwhile.
 *
 * A line is the range's ndjson form: {"key":"...","value":"..."}, with a key
 * or value that is not UTF-8 in base64 and flagged "keyBase64":true or
 * "valueBase64":true. An export is a cut of the cluster as the range read
 * it, not a point-in-time snapshot (for that, see `ringkv snapshot`); values
 * with a TTL are exported as plain values, since the range does not say when
 * they expire.
 *
 *   ringkv export --url http://a:8080 > data.jsonl
 *   ringkv import --url http://b:8080 --file data.jsonl
 */

import { isUtf8 } from 'node:buffer';
import type { RingkvClient } from '../client/index.js';
import { isRingkvError, RingkvError } from '../util/errors.js';
import {
  CONNECTION_FLAGS_USAGE,
  checkRange,
  clientCommand,
  describeFailure,
  EXIT_CODES_USAGE,
  exitCodeOf,
  output,
  positiveInteger,
  REPLICA_FLAGS_USAGE,
  replicaOptions,
} from './client-command.js';
import { EXIT } from './command.js';
import { jsonLine } from './data-commands.js';

/** Writes in flight during an import: enough to hide a round trip, few enough to leave room for clients. */
const IMPORT_CONCURRENCY_DEFAULT = 16;
const IMPORT_CONCURRENCY_MAX = 256;
/**
 * The longest line an import reads: room for the largest value a node takes
 * by default (8 MiB) in any encoding an export uses (JSON escapes a control
 * byte in 6 bytes), and its key. A longer line stops the import before it
 * is held whole.
 */
const IMPORT_LINE_BYTES_DEFAULT = 64 * 1024 * 1024;
/** Below the longest string Node.js makes (2^29 - 24 characters): a longer line could not be parsed. */
const IMPORT_LINE_BYTES_MAX = 500 * 1024 * 1024;

export const exportCommand = clientCommand({
  usage: `Usage: ringkv export [--start S] [--end E] [flags] > FILE

Writes the cluster's live entries with S <= key < E (default: all of them)
to stdout, in key order, one JSON object per line: {"key":"...","value":"..."},
a key or value that is not UTF-8 in base64 with "keyBase64":true or
"valueBase64":true. \`ringkv import\` reads it back. The cluster keeps serving
meanwhile; writes made during the export may or may not be in it.

  --start S        the first key (default: the first key)
  --end E          the key after the last (default: to the last key)
${CONNECTION_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['start', 'end'],
  positionals: { min: 0, max: 0, synopsis: 'ringkv export' },
  run: async (client, { flags }) => {
    checkRange(flags.start ?? '', flags.end, ['--start', '--end']);
    let count = 0;
    for await (const entry of client.scan(flags.start ?? '', flags.end, { scope: 'cluster' })) {
      await output(jsonLine(entry.key, entry.value));
      count++;
    }
    process.stderr.write(`ringkv: exported ${count} entries\n`);
    return EXIT.ok;
  },
});

export const importCommand = clientCommand({
  usage: `Usage: ringkv import [--file FILE] [flags] < FILE

Stores every entry of an export (one JSON object per line, as \`ringkv
export\` writes them; stdin without --file), each once --ack replicas have
it, --concurrency writes at a time (lines of one key one after the other,
so the last one wins). A line that cannot be read stops the
import: nothing after it is read, the writes already started finish, then
it names the line and how many entries were imported (exit 2); what was
stored stays. A write that fails stops it too, naming its line and the
count (the exit code is that failure's). A --file that cannot be read is
exit 2 too. A line is UTF-8 text, at most --max-line-bytes long; one
ending in CR LF is read as ending in LF.

  --file FILE         read FILE instead of stdin
  --concurrency N     writes in flight (default ${IMPORT_CONCURRENCY_DEFAULT}, at most ${IMPORT_CONCURRENCY_MAX})
  --max-line-bytes N  the longest line (default ${IMPORT_LINE_BYTES_DEFAULT}, at most ${IMPORT_LINE_BYTES_MAX})
${CONNECTION_FLAGS_USAGE}
${REPLICA_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['file', 'concurrency', 'max-line-bytes', 'ack', 'from'],
  positionals: { min: 0, max: 0, synopsis: 'ringkv import' },
  run: async (client, { flags }) => {
    const concurrency = positiveInteger(flags.concurrency, 'concurrency') ?? IMPORT_CONCURRENCY_DEFAULT;
    if (concurrency > IMPORT_CONCURRENCY_MAX) {
      throw new RingkvError('RINGKV_CONFIG', `Bad --concurrency: at most ${IMPORT_CONCURRENCY_MAX}`);
    }
    const maxLineBytes =
      positiveInteger(flags['max-line-bytes'], 'max-line-bytes', IMPORT_LINE_BYTES_MAX) ??
      IMPORT_LINE_BYTES_DEFAULT;
    const input: AsyncIterable<Buffer | string> =
      flags.file === undefined ? process.stdin : await fileChunks(flags.file);
    const { stored, stop, failed } = await importLines(client, inputLines(input, maxLineBytes), {
      concurrency,
      options: replicaOptions(flags),
    });
    if (failed !== undefined) {
      // Which line and how many were stored: where to look, and what a second run will write again.
      process.stderr.write(
        `ringkv: ${describeFailure(failed.error)}; the write of line ${failed.line} failed, imported ${stored} entries before the import stopped\n`,
      );
      return exitCodeOf(failed.error);
    }
    if (stop !== undefined) {
      // A line that cannot be read or a --file that cannot: bad usage, what was stored before stays.
      throw new RingkvError('RINGKV_CONFIG', `${stop.message}; imported ${stored} entries before it`, {
        cause: stop,
      });
    }
    process.stderr.write(`ringkv: imported ${stored} entries\n`);
    return EXIT.ok;
  },
});

/** A file's bytes in chunks, read through the storage package's file system seam (loaded only here). */
async function fileChunks(path: string): Promise<AsyncGenerator<Buffer>> {
  const { nodeVfs } = await import('../storage/index.js');
  let file: Awaited<ReturnType<typeof nodeVfs.open>>;
  try {
    file = await nodeVfs.open(path, 'r');
  } catch (err) {
    throw new RingkvError('RINGKV_CONFIG', `Cannot read --file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return (async function* chunks() {
    try {
      for (let position = 0; ; ) {
        const chunk = Buffer.allocUnsafe(64 * 1024);
        let read: number;
        try {
          read = await file.read(chunk, 0, chunk.length, position);
        } catch (err) {
          // A directory opens and fails at its first read (EISDIR): unreadable, as for open.
          throw new RingkvError('RINGKV_CONFIG', `Cannot read --file ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        if (read === 0) return;
        position += read;
        yield chunk.subarray(0, read);
      }
    } finally {
      await file.close();
    }
  })();
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * The input's lines, numbered from 1, without their LF (or CR LF), the last
 * one without its LF too, the first without a UTF-8 byte order mark. Read as the caller asks for the next line, so
 * that at most one chunk and one line are held; a line longer than
 * `maxBytes` is a usage error naming it, thrown before more of it is held.
 */
async function* inputLines(
  input: AsyncIterable<Buffer | string>,
  maxBytes: number,
): AsyncGenerator<{ readonly bytes: Buffer; readonly number: number }> {
  let number = 0;
  let parts: Buffer[] = [];
  let held = 0;
  /** The next line, its CR of a CR LF dropped; `bytes` is at most maxBytes + 1 long. */
  const line = (bytes: Buffer): { bytes: Buffer; number: number } => {
    number++;
    // A byte order mark that an editor put before the first line is not part of the entry.
    const unmarked = number === 1 && bytes.subarray(0, 3).equals(UTF8_BOM) ? bytes.subarray(3) : bytes;
    const text = unmarked.at(-1) === 0x0d ? unmarked.subarray(0, -1) : unmarked;
    if (text.length > maxBytes) parseError(number, `longer than ${maxBytes} bytes`);
    return { bytes: text, number };
  };
  for await (const data of input) {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let from = 0;
    for (let newline = chunk.indexOf(0x0a); newline >= 0; newline = chunk.indexOf(0x0a, from)) {
      parts.push(chunk.subarray(from, newline));
      held += newline - from;
      // Past the bound (one byte more is a CR of a CR LF): named before it is joined.
      if (held > maxBytes + 1) parseError(number + 1, `longer than ${maxBytes} bytes`);
      const whole = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      parts = [];
      held = 0;
      from = newline + 1;
      yield line(whole);
    }
    if (from < chunk.length) {
      held += chunk.length - from;
      if (held > maxBytes + 1) parseError(number + 1, `longer than ${maxBytes} bytes`);
      parts.push(chunk.subarray(from));
    }
  }
  if (held > 0) yield line(Buffer.concat(parts));
}

/**
 * Stores each line's entry, `concurrency` at a time; resolves once every
 * write started has settled, with how many were stored and, if the input
 * stopped early, why: a line that is not an entry, or a --file that cannot
 * be read (both RINGKV_CONFIG), or the first write that failed and its line.
 * Nothing past that point is read. A line whose key is still being written
 * from an earlier line waits for that write (it counts as in flight), so
 * that the later line's value is the one that stays.
 */
async function importLines(
  client: RingkvClient,
  lines: AsyncIterable<{ readonly bytes: Buffer; readonly number: number }>,
  settings: { concurrency: number; options: { ack?: number; from?: number } },
): Promise<{ stored: number; stop: RingkvError | undefined; failed: FailedWrite | undefined }> {
  const inFlight = new Set<Promise<void>>();
  /** The last write started for each key in flight, by the key's bytes as latin1 (one char per byte). */
  const writing = new Map<string, Promise<void>>();
  let stored = 0;
  let failed: FailedWrite | undefined;
  let stop: RingkvError | undefined;
  try {
    for await (const { bytes, number } of lines) {
      if (!isUtf8(bytes)) parseError(number, 'not UTF-8');
      const line = bytes.toString('utf8');
      if (line.trim() === '') continue;
      const entry = parseLine(line, number);
      const name = entry.key.toString('latin1');
      const before = writing.get(name);
      const write = (async () => {
        if (before !== undefined) await before;
        if (failed !== undefined) return;
        try {
          await client.put(entry.key, entry.value, settings.options);
          stored++;
        } catch (error) {
          failed ??= { error, line: number };
        }
      })();
      writing.set(name, write);
      const tracked = write.finally(() => {
        inFlight.delete(tracked);
        if (writing.get(name) === write) writing.delete(name);
      });
      inFlight.add(tracked);
      if (inFlight.size >= settings.concurrency) await Promise.race(inFlight);
      if (failed !== undefined) break;
    }
  } catch (err) {
    if (!isRingkvError(err, 'RINGKV_CONFIG')) throw err;
    stop = err;
  } finally {
    // Whatever stopped the reading, the writes already started settle before the command ends.
    await Promise.all(inFlight);
  }
  return { stored, stop, failed };
}

/** The first write of an import that failed, and the line it came from. */
interface FailedWrite {
  readonly error: unknown;
  readonly line: number;
}

/** One export line as key and value bytes; a line that is not one is a usage error naming it. */
function parseLine(line: string, lineNumber: number): { key: Buffer; value: Buffer } {
  const bad = (why: string): never => parseError(lineNumber, why);
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    bad('not JSON');
  }
  if (typeof record !== 'object' || record === null) return bad('not a JSON object');
  const fields = record as Record<string, unknown>;
  const bytes = (name: 'key' | 'value'): Buffer => {
    const text = fields[name];
    if (typeof text !== 'string') return bad(`"${name}" is not a string`);
    const flag = fields[`${name}Base64`];
    if (flag === undefined || flag === false) return Buffer.from(text, 'utf8');
    if (flag !== true) return bad(`"${name}Base64" is not true or false`);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return bad(`"${name}" is not base64`);
    const decoded = Buffer.from(text, 'base64');
    // Unused bits set in the last character ("QR==" for "QQ==") decode as if they were clear: the
    // text was not written by an export, and what it meant cannot be known.
    if (decoded.toString('base64') !== text)
      return bad(`"${name}" is not canonical base64 (unused bits set)`);
    return decoded;
  };
  const key = bytes('key');
  if (key.length === 0) bad('the key is empty');
  return { key, value: bytes('value') };
}

/** A line that is not an entry: a usage error naming it. */
function parseError(lineNumber: number, why: string): never {
  throw new RingkvError('RINGKV_CONFIG', `Bad line ${lineNumber}: ${why}`);
}
