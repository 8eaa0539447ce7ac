import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntryKind, tombstoneEntry, valueEntry } from '../../storage/index.js';
import {
  bitmapHas,
  bitmapOf,
  decodeArcsAnswer,
  decodeDigestAnswer,
  decodeRequest,
  decodeSummaryAnswer,
  encodeArcsAnswer,
  encodeDigestAnswer,
  encodeRequest,
  encodeSummaryAnswer,
  NOT_READY,
  RequestKind,
} from './format.js';
import { bucketOf, diffLeaves, entryHashes, LeafDigests, MerkleTree, valueHash } from './merkle.js';

const entries = Array.from({ length: 500 }, (_, i) =>
  i % 4 === 0
    ? tombstoneEntry(Buffer.from(`k${i}`), BigInt(i))
    : valueEntry(Buffer.from(`k${i}`), BigInt(i), Buffer.from('v')),
);

describe('Merkle digests', () => {
  it('do not depend on the order entries are added in', () => {
    const forward = new LeafDigests(6);
    const backward = new LeafDigests(6);
    for (const e of entries) forward.add(e);
    for (const e of [...entries].reverse()) backward.add(e);
    assert.deepEqual(forward.words, backward.words);
    assert.equal(forward.count(), 500);
    assert.deepEqual(MerkleTree.of(forward).root(), MerkleTree.of(backward).root());
    assert.deepEqual(diffLeaves(MerkleTree.of(forward), MerkleTree.of(backward)), []);
  });

  it('find exactly the buckets whose contents differ: a key, a version, a kind, a value or an expiry', () => {
    const a = new LeafDigests(6);
    const b = new LeafDigests(6);
    for (const e of entries) a.add(e);
    const changed = new Map<number, string>([
      [3, 'missing'],
      [10, 'version'],
      [21, 'kind'],
      [33, 'value'],
      [46, 'expiry'],
    ]);
    for (const [i, e] of entries.entries()) {
      const how = changed.get(i);
      if (how === 'missing') continue;
      if (how === 'version') b.add({ ...e, version: e.version + 1n });
      else if (how === 'kind') b.add(tombstoneEntry(e.key, e.version));
      else if (how === 'value') b.add({ ...e, value: Buffer.from('w') });
      else if (how === 'expiry') b.add({ ...e, expiresAtMs: 1_900_000_000_000 });
      else b.add(e);
    }
    const expected = [...new Set([...changed.keys()].map((i) => bucketOf(entries[i]!.key, 6)))].sort(
      (x, y) => x - y,
    );
    assert.deepEqual(diffLeaves(MerkleTree.of(a), MerkleTree.of(b)), expected);
    assert.notDeepEqual(MerkleTree.of(a).root(), MerkleTree.of(b).root());
  });
});

describe('entryHashes', () => {
  it('gives the values every node sums (they cross the wire: a change would make every replica differ)', () => {
    const out = new Uint32Array(2);
    const hashes = (key: Buffer, version: bigint, kind: number, value: number): number[] => {
      entryHashes(key, version, kind, value, out);
      return [...out];
    };
    assert.deepEqual(hashes(Buffer.from(''), 0n, 1, 0), [3503106064, 1138469227]);
    assert.deepEqual(
      hashes(Buffer.from('user:42'), 0x0123456789abcdefn, 1, 0xdeadbeef),
      [2794469416, 2972869641],
    );
    // A key longer than any before it (the scratch grows), the largest version.
    assert.deepEqual(hashes(Buffer.from('k'.repeat(300)), (1n << 64n) - 1n, 2, 7), [3498770342, 1554119578]);
    assert.deepEqual(
      hashes(Buffer.from('user:42'), 0x0123456789abcdefn, 1, 0xdeadbeef),
      [2794469416, 2972869641],
    );
  });
});

describe('valueHash', () => {
  it('tells apart two expiries of one value, and no expiry from any', () => {
    const at = (expiresAtMs: number) => valueEntry(Buffer.from('k'), 7n, Buffer.from('v'), expiresAtMs);
    const hashes = [0, 1, 1_900_000_000_000, 1_900_000_000_001, 2 ** 48 - 1].map((ms) => valueHash(at(ms)));
    assert.equal(new Set(hashes).size, hashes.length, hashes.join(' '));
    assert.equal(valueHash(at(5_000)), valueHash(at(5_000)));
    assert.equal(valueHash(tombstoneEntry(Buffer.from('k'), 7n)), 0);
  });
});

describe('anti-entropy messages', () => {
  it('round-trip requests and answers', () => {
    const leaves = new LeafDigests(4);
    for (const e of entries) leaves.add(e);
    const digest = {
      kind: RequestKind.Digest,
      leafBits: 4,
      replicationFactor: 3,
      from: 'http://127.0.0.1:8080',
      ringFingerprint: 0xdeadbeef,
      root: MerkleTree.of(leaves).root(),
    } as const;
    assert.deepEqual(decodeRequest(encodeRequest(digest)), digest);
    const bitmap = bitmapOf(4, [0, 5, 15]);
    assert.ok(bitmapHas(bitmap, 5) && !bitmapHas(bitmap, 6));
    const arcs = {
      kind: RequestKind.Arcs,
      leafBits: 4,
      replicationFactor: 2,
      from: 'http://127.0.0.1:8081',
      ringFingerprint: 7,
      buckets: bitmap,
    } as const;
    assert.deepEqual(decodeRequest(encodeRequest(arcs)), arcs);
    const summary = {
      kind: RequestKind.Summary,
      leafBits: 4,
      replicationFactor: 2,
      from: 'http://127.0.0.1:8081',
      ringFingerprint: 7,
      arcs: [0, 17, 4095],
      start: Buffer.from('k1'),
      limit: 100,
    };
    assert.deepEqual(decodeRequest(encodeRequest({ ...summary, kind: RequestKind.Summary })), summary);
    const words = new Uint32Array([1, 2, 3, 4, 5, 0xffffffff]);
    assert.deepEqual(decodeArcsAnswer(encodeArcsAnswer(words)), words);
    assert.equal(decodeDigestAnswer(encodeDigestAnswer(undefined), 4), undefined);
    assert.equal(decodeDigestAnswer(encodeDigestAnswer(NOT_READY), 4), NOT_READY);
    const answered = decodeDigestAnswer(encodeDigestAnswer(leaves), 4);
    assert.ok(answered instanceof LeafDigests);
    assert.deepEqual(answered.words, leaves.words);
    const page = {
      summaries: entries
        .slice(0, 3)
        .map((e) => ({ key: e.key, version: e.version, kind: e.kind, valueHash: valueHash(e) })),
      more: true,
      coveredThrough: Buffer.from('k2'),
    };
    assert.deepEqual(decodeSummaryAnswer(encodeSummaryAnswer(page)), page);
    // Versions at the edges of 64 bits, and the bytes on the wire: big-endian, after the key.
    const edge = {
      summaries: [
        { key: Buffer.from('a'), version: (1n << 64n) - 1n, kind: EntryKind.Value, valueHash: 7 },
        { key: Buffer.from('b'), version: (1n << 63n) + 1n, kind: EntryKind.Tombstone, valueHash: 0 },
      ],
      more: false,
      coveredThrough: Buffer.alloc(0),
    };
    const encoded = encodeSummaryAnswer(edge);
    assert.deepEqual(decodeSummaryAnswer(encoded), edge);
    const expected = Buffer.alloc(8);
    expected.writeBigUInt64BE((1n << 63n) + 1n);
    // header 1, covered length 1, count 4; first summary 1 + 1 + 13; then the key length and key of the second.
    assert.deepEqual(encoded.subarray(6 + 15 + 2, 6 + 15 + 2 + 8), expected);
  });

  it('refuse malformed bodies with typed errors', () => {
    assert.throws(() => decodeRequest(Buffer.from([9, 1, 4, 3, 0])), { code: 'RINGKV_BAD_REQUEST' });
    assert.throws(() => decodeRequest(Buffer.from([1, 1, 4, 3, 0])), { code: 'RINGKV_BAD_REQUEST' });
    assert.throws(() => decodeRequest(Buffer.from([1, 2, 4, 3, 0, 1, 2])), { code: 'RINGKV_BAD_REQUEST' });
    assert.throws(() => decodeDigestAnswer(Buffer.from([1, 0, 0]), 4), { code: 'RINGKV_PROTOCOL' });
    assert.throws(() => decodeArcsAnswer(Buffer.from([0, 0, 0, 2, 0])), { code: 'RINGKV_PROTOCOL' });
    // A summary request claiming more arcs than it carries.
    assert.throws(() => decodeRequest(Buffer.from([2, 2, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 9])), {
      code: 'RINGKV_BAD_REQUEST',
    });
    assert.throws(() => decodeSummaryAnswer(Buffer.from([0, 0, 0xff, 0xff, 0xff, 0xff])), {
      code: 'RINGKV_PROTOCOL',
    });
  });
});
