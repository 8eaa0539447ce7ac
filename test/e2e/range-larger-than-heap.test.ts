/**
 * API.md: "Range answers are streamed: the node's memory does not grow with
 * the size of the range, and a client that stops reading stalls only its own
 * answer." A node with a 48 MiB heap serves a 120 MiB range to a client that
 * pauses now and then; every byte must arrive, the node must stay up, and
 * while the client is paused the node must not have buffered the range.
 * The same range as NDJSON (every value base64 text, one line each) too.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { entityPath, httpRequest, rangePath } from '../support/http-client.js';
import { killAllStarted, type NodeProcess, sleep, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const MiB = 1024 * 1024;
const VALUE_COUNT = 120;
const HEAP_MIB = 48;

const keyOf = (i: number) => `big/${String(i).padStart(3, '0')}`;

/** Value i: 1 MiB whose bytes depend on i and the position, so misplaced bytes show. */
function bigValue(i: number): Buffer {
  const value = Buffer.allocUnsafe(MiB);
  for (let p = 0; p < MiB; p += 4) value.writeUInt32LE((i * 2_654_435_761 + p) >>> 0, p);
  return value;
}

async function memoryOf(node: NodeProcess): Promise<{ arrayBuffers: number; rss: number }> {
  const answer = await httpRequest(`${node.url}/v0/status`);
  assert.equal(answer.status, 200);
  return (JSON.parse(answer.body.toString()) as { memory: { arrayBuffers: number; rss: number } }).memory;
}

/**
 * GETs `path` from `node` with a reader that pauses 500 ms once it has received
 * each of `pausePoints` bytes (the node fills the socket buffers, then must
 * wait rather than buffer), noting the node's arrayBuffers bytes while
 * paused. `onChunk` sees every chunk as it arrives.
 */
function readSlowly(
  node: NodeProcess,
  path: string,
  pausePoints: number[],
  onChunk: (chunk: Buffer) => void,
): Promise<{ contentType: string | undefined; memoryWhilePaused: number[] }> {
  const memoryWhilePaused: number[] = [];
  let received = 0;
  return new Promise((resolve, reject) => {
    const req = request(`${node.url}${path}`, { agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        onChunk(chunk);
        if (pausePoints.length > 0 && received >= pausePoints[0]!) {
          pausePoints.shift();
          res.pause();
          sleep(500)
            .then(() => memoryOf(node))
            .then((memory) => {
              memoryWhilePaused.push(memory.arrayBuffers);
              res.resume();
            }, reject);
        }
      });
      res.on('end', () => resolve({ contentType: res.headers['content-type'], memoryWhilePaused }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a range larger than the heap', () => {
  let node: NodeProcess;

  before(async () => {
    node = await startNode({
      dataDir: await makeTempDir(),
      execArgv: [`--max-old-space-size=${HEAP_MIB}`],
      args: ['--sync', 'off', '--memtable-bytes', String(MiB), '--block-cache-bytes', String(4 * MiB)],
    });
    for (let i = 0; i < VALUE_COUNT; i++) {
      const answer = await httpRequest(`${node.url}${entityPath(keyOf(i))}`, {
        method: 'PUT',
        body: bigValue(i),
      });
      assert.equal(answer.status, 201, `PUT ${keyOf(i)}`);
    }
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('streams the same range as NDJSON (base64 values) to a slow reader, and the node stays up', async () => {
    const before = await memoryOf(node);
    // Each value is 1.33 MiB of base64 text in one line: 160 MiB in all, built one entry at a time.
    let pending: Buffer[] = [];
    let lines = 0;
    let mismatch: string | undefined;
    const checkLine = (text: string) => {
      const line = JSON.parse(text) as { key: string; value: string; valueBase64?: boolean };
      if (line.key !== keyOf(lines) || line.valueBase64 !== true) mismatch ??= `line ${lines}: ${line.key}`;
      else if (!Buffer.from(line.value, 'base64').equals(bigValue(lines)))
        mismatch ??= `line ${lines} differs`;
      lines++;
    };
    const read = await readSlowly(
      node,
      `${rangePath('big/', 'big0')}&format=ndjson`,
      [8 * MiB, 60 * MiB],
      (chunk) => {
        let at = 0;
        for (let newline = chunk.indexOf(0x0a); newline >= 0; newline = chunk.indexOf(0x0a, at)) {
          pending.push(chunk.subarray(at, newline));
          checkLine(Buffer.concat(pending).toString('latin1'));
          pending = [];
          at = newline + 1;
        }
        if (at < chunk.length) pending.push(chunk.subarray(at));
      },
    );
    assert.equal(read.contentType, 'application/x-ndjson');
    assert.equal(mismatch, undefined);
    assert.equal(lines, VALUE_COUNT);
    assert.equal(pending.length, 0, 'the body ends with a whole line');
    assert.equal(read.memoryWhilePaused.length, 2);
    const growthMiB = (read.memoryWhilePaused[0]! - before.arrayBuffers) / MiB;
    assert.ok(growthMiB < 64, `node buffers grew by ${growthMiB.toFixed(1)} MiB while the reader was paused`);
    // A node that buffered the answer would have run out of its 48 MiB heap.
    assert.equal(node.exit, undefined);
  });

  it('streams every byte to a slow reader with flat memory, and the node stays up', async () => {
    const before = await memoryOf(node);
    const expectedBytes = VALUE_COUNT * (keyOf(0).length + 1 + MiB);
    // The answer is checked as it arrives against the expected concatenation of
    // key '\n' value, entry after entry, without keeping it.
    let entry = 0;
    let expected = Buffer.concat([Buffer.from(`${keyOf(0)}\n`), bigValue(0)]);
    let offset = 0;
    let received = 0;
    let mismatch: string | undefined;

    const { memoryWhilePaused } = await readSlowly(
      node,
      rangePath('big/', 'big0'),
      [8 * MiB, 40 * MiB, 80 * MiB],
      (chunk) => {
        received += chunk.length;
        let at = 0;
        while (at < chunk.length && mismatch === undefined) {
          if (entry >= VALUE_COUNT) {
            mismatch = `bytes after the last entry at ${received}`;
            break;
          }
          const take = Math.min(chunk.length - at, expected.length - offset);
          if (!chunk.subarray(at, at + take).equals(expected.subarray(offset, offset + take))) {
            mismatch = `entry ${entry} differs near offset ${offset}`;
          }
          at += take;
          offset += take;
          if (offset === expected.length && ++entry < VALUE_COUNT) {
            expected = Buffer.concat([Buffer.from(`${keyOf(entry)}\n`), bigValue(entry)]);
            offset = 0;
          }
        }
      },
    );

    assert.equal(mismatch, undefined);
    assert.equal(entry, VALUE_COUNT);
    assert.equal(received, expectedBytes);
    assert.equal(memoryWhilePaused.length, 3);
    // Unbounded buffering would hold most of the 120 MiB at the first pause; with
    // back-pressure only a few entries (and not yet collected garbage) are in memory.
    const growthMiB = (memoryWhilePaused[0]! - before.arrayBuffers) / MiB;
    assert.ok(growthMiB < 64, `node buffers grew by ${growthMiB.toFixed(1)} MiB while the reader was paused`);
    assert.equal(node.exit, undefined);
    assert.equal((await httpRequest(`${node.url}/v0/status`)).status, 200);
    assert.deepEqual(await stopNode(node), { code: 0, signal: null });
  });
});
