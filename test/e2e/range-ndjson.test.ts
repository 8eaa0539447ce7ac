/**
 * The NDJSON range format (docs/api.md, "Range formats") on real nodes: one
 * JSON object per line, asked for with `format=ndjson` or an Accept header,
 * on a single node and through a 3-node cluster's range (scope=cluster).
 * UTF-8 and binary values (base64 with a flag), an empty range, a large
 * range read line by line as it streams, plain-text splitting on '\n' (what
 * curl | while read does), the chunk format left as it was, and a bad
 * `format` answered 400.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { startCluster } from '../support/cluster.js';
import { entityPath, httpRequest, RawConnection, rangePath } from '../support/http-client.js';
import { killAllStarted, type NodeProcess, startNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

interface Line {
  readonly key: string;
  readonly value: string;
  readonly keyBase64?: true;
  readonly valueBase64?: true;
}

/** A line's value as bytes, decoding base64 when flagged. */
function valueBytes(line: Line): Buffer {
  return line.valueBase64 === true ? Buffer.from(line.value, 'base64') : Buffer.from(line.value, 'utf8');
}

/** What a shell client does: the whole body as text, split on '\n', each piece parsed. */
function splitLines(body: Buffer): Line[] {
  const text = body.toString('utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'every line ends in \\n');
  return text
    .split('\n')
    .slice(0, -1)
    .map((piece) => JSON.parse(piece) as Line);
}

/** Entries to write: UTF-8 text (quotes, newlines, non-ASCII, control characters), binary, empty. */
const ENTRIES: readonly [string, Buffer][] = [
  ['nd/ascii', Buffer.from('plain value')],
  ['nd/café', Buffer.from('crème brûlée\n"quoted"\tand \\ backslash')],
  ['nd/control', Buffer.from('\u0000\u0001\u001f\u2028\u{1F600}')],
  ['nd/empty', Buffer.alloc(0)],
  ['nd/latin1', Buffer.from([0x63, 0x61, 0x66, 0xe9])],
  ['nd/multi\nline key', Buffer.from('v')],
  ['nd/random', randomBytes(4096)],
  ['nd/zero-ff', Buffer.from([0x00, 0xff, 0x0a, 0x0d])],
];

/** The expected lines for ENTRIES, in key (UTF-8 byte) order. */
function expectedLines(): Line[] {
  return [...ENTRIES]
    .sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
    .map(([key, value]) => {
      const text = Buffer.from(value.toString('utf8'), 'utf8').equals(value);
      return text
        ? { key, value: value.toString('utf8') }
        : { key, value: value.toString('base64'), valueBase64: true as const };
    });
}

/** The range's checks, on any node (single or through the cluster with `scope`). */
function rangeCases(urlOf: () => string, scope: string): void {
  const call = (path: string, headers: Record<string, string> = {}) =>
    httpRequest(`${urlOf()}${path}${scope}`, { headers });

  it('format=ndjson answers one JSON object per line, application/x-ndjson, chunked', async () => {
    const answer = await call(`${rangePath('nd/', 'nd0')}&format=ndjson`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/x-ndjson');
    assert.equal(answer.headers['transfer-encoding'], 'chunked');
    const lines = splitLines(answer.body);
    assert.deepEqual(lines, expectedLines());
    // Every value round-trips to its bytes.
    const byKey = new Map(ENTRIES);
    for (const line of lines) assert.deepEqual(valueBytes(line), byKey.get(line.key), line.key);
  });

  it('Accept: application/x-ndjson asks for it too; format=chunks and */* keep the chunk format', async () => {
    const path = rangePath('nd/', 'nd0');
    const byQuery = await call(`${path}&format=ndjson`);
    for (const accept of ['application/x-ndjson', 'text/html, Application/X-NDJSON;q=0.5']) {
      const answer = await call(path, { accept });
      assert.equal(answer.headers['content-type'], 'application/x-ndjson', accept);
      assert.deepEqual(answer.body, byQuery.body);
    }
    const chunks = await call(path);
    assert.equal(chunks.headers['content-type'], 'application/octet-stream');
    for (const [accept, suffix] of [
      ['*/*', ''],
      ['application/x-ndjson;q=0', ''],
      ['application/x-ndjson', '&format=chunks'],
    ] as const) {
      const answer = await call(`${path}${suffix}`, { accept });
      assert.equal(answer.headers['content-type'], 'application/octet-stream', accept + suffix);
      assert.deepEqual(answer.body, chunks.body);
    }
  });

  it('an empty range is an empty ndjson body', async () => {
    const answer = await call(`${rangePath('nd/x', 'nd/y')}&format=ndjson`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/x-ndjson');
    assert.equal(answer.body.length, 0);
  });

  it('answers 400 with a reason to a bad format', async () => {
    for (const format of ['json', 'NDJSON', '', 'ndjson%00']) {
      const answer = await call(`${rangePath('nd/')}&format=${format}`);
      assert.equal(answer.status, 400, format);
      assert.equal(answer.body.toString(), 'Bad format: expected ndjson or chunks');
    }
  });
}

/** Reads a range as a stream of lines (readline on the response), counting them. */
function readLines(url: string, onLine: (line: Line) => void): Promise<{ status: number; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on('line', (text) => {
        try {
          onLine(JSON.parse(text) as Line);
        } catch (err) {
          req.destroy(err as Error);
        }
      });
      lines.on('close', () =>
        resolve({ status: res.statusCode!, type: String(res.headers['content-type']) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const LARGE_COUNT = 3000;
const largeKey = (i: number) => `large/${String(i).padStart(5, '0')}`;
/** Value i: text for even i, binary (a 0xff byte in it) for odd i; 1 KiB or so. */
function largeValue(i: number): Buffer {
  const text = Buffer.from(`${'é'.repeat(256)}#${i}\n`.repeat(2));
  if (i % 2 === 1) text[7] = 0xff;
  return text;
}

describe('ndjson ranges on a single node', () => {
  let node: NodeProcess;

  before(async () => {
    node = await startNode({ dataDir: await makeTempDir(), args: ['--sync', 'off'] });
    for (const [key, value] of ENTRIES) {
      assert.equal(
        (await httpRequest(`${node.url}${entityPath(key)}`, { method: 'PUT', body: value })).status,
        201,
      );
    }
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  rangeCases(() => node.url, '');

  it('the chunk format is unchanged: one chunk per entry, key \\n value', async () => {
    const conn = await RawConnection.open(node.port);
    try {
      await conn.write(`GET ${rangePath('nd/', 'nd0')} HTTP/1.1\r\nhost: x\r\n\r\n`);
      const answer = await conn.readAnswer();
      const sorted = [...ENTRIES].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
      assert.deepEqual(
        answer.chunks,
        sorted.map(([key, value]) => Buffer.concat([Buffer.from(`${key}\n`), value])),
      );
    } finally {
      conn.close();
    }
  });

  it(`a large range (${LARGE_COUNT} entries, text and binary) read line by line as it streams`, async () => {
    // Written by a few writers in parallel.
    const writers = 8;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = w; i < LARGE_COUNT; i += writers) {
          const answer = await httpRequest(`${node.url}${entityPath(largeKey(i))}`, {
            method: 'PUT',
            body: largeValue(i),
          });
          assert.equal(answer.status, 201);
        }
      }),
    );
    let next = 0;
    const answer = await readLines(`${node.url}${rangePath('large/', 'large0')}&format=ndjson`, (line) => {
      assert.equal(line.key, largeKey(next));
      assert.equal(line.valueBase64 === true, next % 2 === 1, line.key);
      assert.deepEqual(valueBytes(line), largeValue(next), line.key);
      next++;
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.type, 'application/x-ndjson');
    assert.equal(next, LARGE_COUNT);
  });
});

describe('ndjson ranges through a 3-node cluster (scope=cluster)', () => {
  let urls: readonly string[];
  let turn = 0;

  before(async () => {
    const cluster = await startCluster({ count: 3, args: ['--sync', 'off'] });
    urls = cluster.urls;
    // Each entry on one node only (from=1), so that only the cluster range sees them all.
    for (const [i, [key, value]] of ENTRIES.entries()) {
      const answer = await httpRequest(`${urls[i % 3]}${entityPath(key, { ack: 1, from: 1 })}`, {
        method: 'PUT',
        body: value,
      });
      assert.equal(answer.status, 201);
    }
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  // Each case through a different node.
  rangeCases(() => urls[turn++ % 3]!, '&scope=cluster');

  it('a node alone (scope=local) holds only some of the entries', async () => {
    const answer = await httpRequest(`${urls[0]}${rangePath('nd/', 'nd0')}&format=ndjson`);
    const lines = splitLines(answer.body);
    assert.ok(lines.length < ENTRIES.length, `${lines.length} of ${ENTRIES.length}`);
  });
});
