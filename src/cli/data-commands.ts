/**
 * `ringkv get`, `put`, `delete` and `scan`: one request each through the
 * client library (src/client), so they fail over across --url's nodes as
 * any client does. `get` writes the value to stdout as stored, byte for
 * byte (its contract: `ringkv get k > file` copies the value); `scan` writes
 * entries with their control bytes escaped (terminal-safe.ts), so that a
 * stored value cannot drive the terminal.
 */
import { isUtf8 } from 'node:buffer';
import { RingkvError } from '../util/errors.js';
import {
  CONNECTION_FLAGS_USAGE,
  checkRange,
  clientCommand,
  EXIT_CODES_USAGE,
  output,
  positiveInteger,
  REPLICA_FLAGS_USAGE,
  replicaOptions,
} from './client-command.js';
import { EXIT } from './command.js';
import { escapeLine, jsonSafe } from './terminal-safe.js';

export const get = clientCommand({
  usage: `Usage: ringkv get KEY [flags]

Prints the key's value on stdout, byte for byte, with nothing added.

${CONNECTION_FLAGS_USAGE}
${REPLICA_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['ack', 'from'],
  positionals: { min: 1, max: 1, synopsis: 'ringkv get KEY' },
  run: async (client, { flags, positionals }) => {
    const key = positionals[0]!;
    const value = await client.get(key, replicaOptions(flags));
    if (value === undefined) {
      process.stderr.write(`ringkv: Not found: ${JSON.stringify(key)}\n`);
      return EXIT.notFound;
    }
    await output(value);
    return EXIT.ok;
  },
});

export const put = clientCommand({
  usage: `Usage: ringkv put KEY VALUE [flags]
       ringkv put KEY --file FILE [flags]
       ringkv put KEY - [flags]          (the value from stdin)

Stores the value once --ack replicas have it.

  --file FILE      the value is the file's bytes
  --ttl MS         the value reads as absent MS milliseconds from now
${CONNECTION_FLAGS_USAGE}
${REPLICA_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['ack', 'from', 'ttl', 'file'],
  positionals: { min: 1, max: 2, synopsis: 'ringkv put KEY VALUE, KEY --file FILE or KEY -' },
  run: async (client, { flags, positionals }) => {
    const [key, given] = positionals as [string, string | undefined];
    if ((given === undefined) === (flags.file === undefined)) {
      throw new RingkvError(
        'RINGKV_CONFIG',
        'Give the value once: as VALUE, as --file FILE, or as - for stdin',
      );
    }
    const ttl = positiveInteger(flags.ttl, 'ttl');
    const value =
      flags.file !== undefined ? await readValueFile(flags.file) : given === '-' ? await readStdin() : given!;
    await client.put(key, value, { ...replicaOptions(flags), ...(ttl === undefined ? {} : { ttl }) });
    return EXIT.ok;
  },
});

export const del = clientCommand({
  usage: `Usage: ringkv delete KEY [flags]

Deletes the key once --ack replicas stored the delete (a key without a value too).

${CONNECTION_FLAGS_USAGE}
${REPLICA_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: ['ack', 'from'],
  positionals: { min: 1, max: 1, synopsis: 'ringkv delete KEY' },
  run: async (client, { flags, positionals }) => {
    await client.delete(positionals[0]!, replicaOptions(flags));
    return EXIT.ok;
  },
});

export const scan = clientCommand({
  usage: `Usage: ringkv scan START [END] [flags]

Prints the live entries with START <= key < END (no END: to the last key; an
empty START: from the first), in key order, as they arrive: one line each,
the key, a tab, the value. So that an entry is one line and cannot drive the
terminal, backslash, tab, CR and newline are written \\\\, \\t, \\r and \\n,
the other control bytes (0x00-0x1f, 0x7f) \\xHH, and a C1 control in UTF-8
(0xc2 0x80-0x9f) \\xc2\\xHH; every other byte as it is (reversible). With
--json, one JSON object per line: {"key":"...","value":"..."}, a value that
is not UTF-8 in base64 with "valueBase64":true.

  --json           JSON lines
  --local          the entries of the (first) node asked only, not the whole cluster
${CONNECTION_FLAGS_USAGE}

${EXIT_CODES_USAGE}
`,
  flags: [],
  switches: ['json', 'local'],
  positionals: { min: 1, max: 2, synopsis: 'ringkv scan START [END]' },
  run: async (client, { switches, positionals }) => {
    const [start, end] = positionals as [string, string | undefined];
    checkRange(start, end, ['START', 'END']);
    const format = switches.json ? jsonLine : textLine;
    for await (const entry of client.scan(start, end, { scope: switches.local ? 'local' : 'cluster' })) {
      await output(format(entry.key, entry.value));
    }
    return EXIT.ok;
  },
});

/** key TAB value, escaped (terminal-safe.ts escapeLine) so that the entry is one line with no control in it. */
function textLine(key: Buffer, value: Buffer): Buffer {
  return Buffer.concat([escapeLine(key), Buffer.from('\t'), escapeLine(value), Buffer.from('\n')]);
}

/**
 * {"key":"...","value":"..."}: the form of the range's ndjson format; keys are always UTF-8.
 * JSON.stringify escapes the C0 controls; jsonSafe escapes DEL and the C1 controls too.
 */
export function jsonLine(key: Buffer, value: Buffer): string {
  const text = isUtf8(value);
  const valueField = text ? JSON.stringify(value.toString('utf8')) : `"${value.toString('base64')}"`;
  return `${jsonSafe(`{"key":${JSON.stringify(key.toString('utf8'))},"value":${valueField}${text ? '' : ',"valueBase64":true'}}`)}\n`;
}

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of process.stdin) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function readValueFile(path: string): Promise<Buffer> {
  // Files are read through the storage package's file system seam; loaded only here.
  const { nodeVfs } = await import('../storage/index.js');
  try {
    return await nodeVfs.readFile(path);
  } catch (err) {
    throw new RingkvError('RINGKV_CONFIG', `Cannot read --file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
