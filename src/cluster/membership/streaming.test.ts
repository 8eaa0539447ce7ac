import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { limits } from '../../config/limits.js';
import { type Entry, MemoryEngine, tombstoneEntry, valueEntry } from '../../storage/index.js';
import { FRAME_HEADER_BYTES } from '../transport/format.js';
import { decodeStreamPage, encodeStreamRequest } from './format.js';
import { bootstrapMembership, viewDigest, withLeaving } from './membership.js';
import { type MoveRings, StreamReceiver, StreamSource, streamedTo } from './streaming.js';
import { Topology } from './topology.js';

const [a, b, c, d] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1'] as const;
const VNODES = { vnodesPerNode: 16 };
// d leaves: a, b and c take its ranges over.
const view = withLeaving(bootstrapMembership([a, b, c, d]), d, { dead: false });
const topology = new Topology(view, VNODES);
const rings: MoveRings = { current: topology.current!, future: topology.future! };

/** The first `count` keys named `prefix-i` that source `d` streams to `a`, in key order. */
function keysFromDToA(prefix: string, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; out.length < count && i < 100_000; i++) {
    const key = Buffer.from(`${prefix}-${String(i).padStart(6, '0')}`);
    if (streamedTo(rings, d, a, key)) out.push(key);
  }
  assert.equal(out.length, count);
  return out;
}

/** A receiver on `a` streaming from sources on b, c, d that answer like a transport: a page over the frame limit fails. */
function receiverOnA(sources: Map<string, StreamSource>, engine: MemoryEngine) {
  return new StreamReceiver({
    selfUrl: a,
    view,
    rings,
    engine,
    transport: {
      stream: async (peer, body) => {
        const page = await sources.get(peer)!.handle(body);
        if (FRAME_HEADER_BYTES + page.length > limits.internodeFrameBytesMax) {
          throw new Error(`Bad internode frame length: ${page.length + FRAME_HEADER_BYTES - 4}`);
        }
        return page;
      },
      isUp: () => true,
    },
    retryMs: 5,
    bytesPerSecond: 1 << 30,
  });
}

/** Runs `receiver` for at most `ms`: whatever it got by then. */
async function runFor(receiver: StreamReceiver, ms: number): Promise<void> {
  const timer = setTimeout(() => receiver.abort(), ms);
  await receiver.run();
  clearTimeout(timer);
}

function sourcesWith(dEngine: MemoryEngine, options: { entriesMax?: number; examineMax?: number } = {}) {
  return new Map(
    [b, c, d].map((url): [string, StreamSource] => [
      url,
      new StreamSource({
        selfUrl: url,
        topology: new Topology(view, VNODES),
        engine: url === d ? dEngine : new MemoryEngine(),
        ...options,
      }),
    ]),
  );
}

describe('StreamSource pages', () => {
  test('a page fits an internode frame, even with a maximal value after nearly a page of bytes', async () => {
    const engine = new MemoryEngine();
    const [first, second] = keysFromDToA('big', 2);
    await engine.write(valueEntry(first!, 1n, Buffer.alloc(limits.streamPageBytesMax - 4096, 1)));
    await engine.write(valueEntry(second!, 2n, Buffer.alloc(limits.valueBytesMax, 2)));
    const source = new StreamSource({ selfUrl: d, topology: new Topology(view, VNODES), engine });
    const received: Entry[] = [];
    let start = Buffer.alloc(0);
    for (let pages = 0; pages < 10; pages++) {
      const body = await source.handle(
        encodeStreamRequest({ epoch: view.epoch, view: viewDigest(view), target: a, start, limit: 1024 }),
      );
      assert.ok(
        FRAME_HEADER_BYTES + body.length <= limits.internodeFrameBytesMax,
        `page of ${body.length} bytes over the frame limit ${limits.internodeFrameBytesMax}`,
      );
      const page = decodeStreamPage(body);
      received.push(...page.entries);
      if (!page.more) break;
      start = Buffer.concat([page.coveredThrough, Buffer.alloc(1)]);
    }
    assert.deepEqual(
      received.map((e) => [e.key.toString(), e.version, e.value.length]),
      [
        [first!.toString(), 1n, limits.streamPageBytesMax - 4096],
        [second!.toString(), 2n, limits.valueBytesMax],
      ],
    );
  });

  test('a receiver gets every entry at its version, kind and expiry, tombstones and expired values included', async () => {
    const dEngine = new MemoryEngine();
    const keys = keysFromDToA('k', 300);
    const written: Entry[] = keys.map((key, i) =>
      i % 3 === 0
        ? tombstoneEntry(key, BigInt(1000 + i))
        : valueEntry(key, BigInt(1000 + i), Buffer.from(`v${i}`), i % 3 === 1 ? 1 + i : 0),
    );
    for (const entry of written) await dEngine.write(entry);
    // Keys d holds that are not for a: examined, not sent.
    for (let i = 0; i < 300; i++) {
      const key = Buffer.from(`other-${i}`);
      if (!streamedTo(rings, d, a, key)) await dEngine.write(valueEntry(key, 1n, key));
    }
    const engine = new MemoryEngine();
    // Small pages and few entries examined per page: many page boundaries.
    const receiver = receiverOnA(sourcesWith(dEngine, { entriesMax: 7, examineMax: 5 }), engine);
    await runFor(receiver, 10_000);
    assert.equal(receiver.done, true);
    for (const entry of written) assert.deepEqual(await engine.get(entry.key), entry);
    const progress = receiver.progress();
    assert.equal(progress.keys, written.length, 'each entry once');
    assert.equal(progress.rangesDone, 3);
  });

  test('a receiver streams past a maximal value to the end of its source', async () => {
    const dEngine = new MemoryEngine();
    const [first, second, third] = keysFromDToA('big', 3);
    await dEngine.write(valueEntry(first!, 1n, Buffer.alloc(limits.streamPageBytesMax - 4096, 1)));
    await dEngine.write(valueEntry(second!, 2n, Buffer.alloc(limits.valueBytesMax, 2)));
    await dEngine.write(valueEntry(third!, 3n, Buffer.from('after')));
    const engine = new MemoryEngine();
    const receiver = receiverOnA(sourcesWith(dEngine), engine);
    await runFor(receiver, 3000);
    assert.equal(receiver.done, true, JSON.stringify(receiver.progress().transfers));
    assert.equal((await engine.get(third!))?.value.toString(), 'after');
  });
});

describe('streamedTo', () => {
  test('a node that moves up a key list gets the key from every source ahead of its old place', () => {
    const members = [a, b, c, d];
    let checked = 0;
    for (let i = 0; i < 2000; i++) {
      const key = Buffer.from(`moved-${i}`);
      const before = rings.current.replicas(key, 3);
      const after = rings.future.replicas(key, 3);
      // A write with `from` f reached before[0..f); after the move a read asks after[0..f).
      for (let f = 1; f <= 3; f++) {
        for (const target of after.slice(0, f).filter((url) => !before.slice(0, f).includes(url))) {
          for (const source of before.slice(0, f)) {
            checked++;
            assert.ok(streamedTo(rings, source, target, key), `${key} from=${f}: ${source} -> ${target}`);
          }
        }
      }
      // Nothing goes to a node no write of the key could have skipped, nor from one that holds none.
      for (const source of members.filter((url) => !before.includes(url))) {
        for (const target of members) assert.ok(!streamedTo(rings, source, target, key));
      }
      for (const target of members.filter((url) => !after.includes(url))) {
        for (const source of members) assert.ok(!streamedTo(rings, source, target, key));
      }
    }
    assert.ok(checked > 1000, `${checked} pairs checked`);
  });
});
