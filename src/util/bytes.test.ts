import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareBytes, compareRange, readU64BE, u64FromHalves, writeU64BE } from './bytes.js';

const sign = (n: number): number => Math.sign(n);
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.constantFrom(0n, 1n, (1n << 32n) - 1n, 1n << 32n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n),
);

describe('64-bit values', () => {
  it('writes and reads exactly as Buffer does, at any offset', () => {
    fc.assert(
      fc.property(u64, fc.nat({ max: 16 }), (value, offset) => {
        const ours = Buffer.alloc(24, 0xaa);
        const node = Buffer.alloc(24, 0xaa);
        writeU64BE(ours, offset, value);
        node.writeBigUInt64BE(value, offset);
        assert.deepEqual(ours, node, 'the same bytes, and none around them touched');
        assert.equal(readU64BE(node, offset), value);
        assert.equal(u64FromHalves(node.readUInt32BE(offset), node.readUInt32BE(offset + 4)), value);
      }),
    );
  });

  it('refuses a value outside 0..2^64-1, and an offset past the end, writing nothing', () => {
    const buf = Buffer.alloc(12);
    assert.throws(() => writeU64BE(buf, 0, -1n), RangeError);
    assert.throws(() => writeU64BE(buf, 0, 1n << 64n), RangeError);
    assert.throws(() => writeU64BE(buf, 5, 1n), RangeError);
    assert.throws(() => writeU64BE(buf, -1, 1n), RangeError);
    assert.deepEqual(buf, Buffer.alloc(12));
    assert.throws(() => readU64BE(buf, 5), RangeError);
  });
});

describe('byte comparisons', () => {
  // Long common prefixes reach the native comparison past the first 32 bytes.
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc
      .tuple(fc.uint8Array({ minLength: 40, maxLength: 40 }), fc.uint8Array({ maxLength: 8 }))
      .map(([p, t]) => Uint8Array.from([...p, ...t])),
  );

  it('orders as Buffer.compare does, whole or by range', () => {
    fc.assert(
      fc.property(bytes, bytes, fc.nat(), fc.nat(), (x, y, cutA, cutB) => {
        const a = Buffer.from(x);
        // The same prefix as `a` most of the time, so that the comparison runs past 32 bytes.
        const b = Buffer.concat([a.subarray(0, Math.min(a.length, cutB % 64)), Buffer.from(y)]);
        assert.equal(sign(compareBytes(a, b)), Buffer.compare(a, b));
        assert.equal(sign(compareBytes(new Uint8Array(a), new Uint8Array(b))), Buffer.compare(a, b));
        const aStart = a.length === 0 ? 0 : cutA % a.length;
        const bStart = b.length === 0 ? 0 : cutA % b.length;
        assert.equal(
          sign(compareRange(a, aStart, a.length, b, bStart, b.length)),
          Buffer.compare(a.subarray(aStart), b.subarray(bStart)),
        );
      }),
    );
  });
});
