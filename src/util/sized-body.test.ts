import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SizedBody } from './sized-body.js';

const FIRST_BYTES = 64 * 1024;

describe('SizedBody', () => {
  it('reserves at most the first bytes for a large declared size, and grows as bytes come', () => {
    const declared = 8 * 1024 * 1024;
    const body = new SizedBody(declared, FIRST_BYTES);
    assert.equal(body.reserved, FIRST_BYTES);
    const chunk = Buffer.alloc(100_000, 7);
    assert.equal(body.fill(chunk), chunk.length);
    assert.ok(
      body.reserved >= chunk.length && body.reserved <= 2 * chunk.length,
      `reserved ${body.reserved}`,
    );
    assert.equal(body.complete, false);
    assert.throws(() => body.value(), /before it is complete/);
  });

  it('a small body is one buffer of its own size from the start', () => {
    const body = new SizedBody(10, FIRST_BYTES);
    assert.equal(body.reserved, 10);
    assert.equal(body.fill(Buffer.from('0123456789')), 10);
    assert.equal(body.value().toString(), '0123456789');
  });

  it('takes no byte past the declared size, from an offset, and keeps every byte in order', () => {
    const declared = 300_000;
    const source = Buffer.alloc(declared + 50);
    for (let i = 0; i < source.length; i++) source[i] = (i * 31) & 0xff;
    const body = new SizedBody(declared, FIRST_BYTES);
    // Chunks of odd sizes, the first from an offset, the last running past the body (a pipelined request).
    let at = 0;
    assert.equal(body.fill(Buffer.concat([Buffer.from('HEAD'), source.subarray(0, 1000)]), 4), 1000);
    at = 1000;
    for (const size of [1, 65_535, 70_000, 3, 150_000]) {
      at += body.fill(source.subarray(at, at + size));
    }
    assert.equal(body.filled, at);
    const rest = source.subarray(at);
    assert.equal(body.fill(rest), declared - at, 'only what the body lacks');
    assert.equal(body.complete, true);
    const value = body.value();
    assert.equal(value.length, declared);
    assert.ok(value.equals(source.subarray(0, declared)));
    assert.equal(body.fill(Buffer.from('more')), 0);
  });
});
