import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hash32 } from './hash.js';

test('hash32 matches published MurmurHash3 x86_32 vectors', () => {
  // Vectors cover every tail length (0..3 bytes after the 4-byte blocks) and a seed.
  assert.equal(hash32(Buffer.alloc(0)), 0);
  assert.equal(hash32(Buffer.alloc(0), 1), 0x514e28b7);
  assert.equal(hash32(Buffer.from('hello')), 0x248bfa47);
  assert.equal(hash32(Buffer.from('Hello, world!'), 1234), 0xfaf6cdb3);
  assert.equal(hash32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x2e4ff723);
  assert.equal(hash32(Buffer.from([0x21, 0x43, 0x65, 0x87])), 0xf55b516b);
  assert.equal(hash32(Buffer.from([0x21, 0x43, 0x65])), 0x7e4a8634);
  assert.equal(hash32(Buffer.from([0x21, 0x43])), 0xa0f7b07a);
  assert.equal(hash32(Buffer.from([0x21])), 0x72661cf4);
});

test('hash32 reads only the view it is given', () => {
  const big = Buffer.from('xxhelloyy');
  assert.equal(hash32(big.subarray(2, 7)), hash32(Buffer.from('hello')));
});
