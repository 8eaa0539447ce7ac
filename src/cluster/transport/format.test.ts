import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { type Entry, EntryKind } from '../../storage/index.js';
import {
  decodeMessage,
  encodeBody,
  encodeFrame,
  FRAME_HEADER_BYTES,
  type Message,
  MessageType,
  writeFrameHeader,
} from './format.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameEncoder } from './frame-encoder.js';
import { fitBatch } from './serve.js';

const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

const entryArb: fc.Arbitrary<Entry> = fc
  .oneof(
    fc.record({
      key: bytes(40),
      version: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      kind: fc.constant(EntryKind.Value),
      expiresAtMs: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
      value: bytes(300),
    }),
    fc.record({
      key: bytes(40),
      version: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      kind: fc.constant(EntryKind.Tombstone),
      expiresAtMs: fc.constant(0),
      value: fc.constant(Buffer.alloc(0)),
    }),
  )
  .map((entry) => ({ ...entry }));

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  entryArb.map((entry) => ({ type: MessageType.Write, entry })),
  bytes(64).map((key) => ({ type: MessageType.Read, key })),
  fc
    .record({ start: bytes(64), end: fc.option(bytes(64), { nil: undefined }), limit: fc.nat() })
    .map((m) => ({ type: MessageType.Scan, ...m })),
  fc.constant({ type: MessageType.Ping }),
  fc.constant({ type: MessageType.Ok }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((newerVersion) => ({ type: MessageType.Ok, newerVersion })),
  fc.option(entryArb, { nil: undefined }).map((entry) => ({ type: MessageType.Entry, entry })),
  fc
    .record({ entries: fc.array(entryArb, { maxLength: 8 }), more: fc.boolean() })
    .map((m) => ({ type: MessageType.Batch, ...m })),
  fc.constant({ type: MessageType.Pong }),
  fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((wallMs) => ({ type: MessageType.Pong, wallMs })),
  fc.webUrl().map((node) => ({ type: MessageType.Leaving, node })),
  fc.constant({ type: MessageType.LeavingAck }),
  bytes(200).map((body) => ({ type: MessageType.AntiEntropy, body })),
  bytes(200).map((body) => ({ type: MessageType.AntiEntropyAnswer, body })),
  fc
    .record({
      code: fc.constantFrom('RINGKV_TIMEOUT' as const, 'RINGKV_CLOSED' as const, 'RINGKV_PROTOCOL' as const),
      message: fc.string({ maxLength: 50 }),
    })
    .map((m) => ({ type: MessageType.Error, ...m })),
);

interface Frame {
  type: number;
  id: number;
  body: Buffer;
}

function decodeAll(chunks: Buffer[], frameBytesMax = 1 << 20): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(frameBytesMax, (type, id, body) =>
    frames.push({ type, id, body: Buffer.from(body) }),
  );
  for (const chunk of chunks) decoder.push(chunk);
  assert.ok(decoder.idle, 'nothing left over at a frame boundary');
  return frames;
}

describe('internode format', () => {
  test('every message type survives encode then decode (fast-check)', () => {
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 0, max: 0xffffffff }), (message, id) => {
        const frame = encodeFrame(message, id);
        const [decoded] = decodeAll([frame]);
        assert.ok(decoded !== undefined);
        assert.equal(decoded.type, message.type);
        assert.equal(decoded.id, id);
        assert.equal(frame.readUInt32BE(0), frame.length - 4);
        assert.deepEqual(decodeMessage(decoded.type, decoded.body), message);
        assert.deepEqual(decodeMessage(message.type, encodeBody(message)), message);
      }),
      propertyParams({ numRuns: 1000 }),
    );
  });

  test('frames split at every byte boundary, or fed byte by byte, decode identically', () => {
    const messages: Message[] = [
      { type: MessageType.Ping },
      { type: MessageType.Read, key: Buffer.from('a key') },
      {
        type: MessageType.Write,
        entry: { key: Buffer.from('k'), version: 9n, kind: 1, expiresAtMs: 0, value: Buffer.alloc(40, 3) },
      },
      { type: MessageType.Batch, entries: [], more: true },
      { type: MessageType.Scan, start: Buffer.from('s'), end: undefined, limit: 7 },
    ];
    const stream = Buffer.concat(messages.map((m, i) => encodeFrame(m, i + 1)));
    const whole = decodeAll([stream]);
    assert.equal(whole.length, messages.length);
    for (const [i, frame] of whole.entries()) {
      assert.deepEqual(decodeMessage(frame.type, frame.body), messages[i]);
    }
    for (let cut = 0; cut <= stream.length; cut++) {
      assert.deepEqual(decodeAll([stream.subarray(0, cut), stream.subarray(cut)]), whole, `cut at ${cut}`);
      for (let second = cut; second <= stream.length; second += 7) {
        const three = [stream.subarray(0, cut), stream.subarray(cut, second), stream.subarray(second)];
        assert.deepEqual(decodeAll(three), whole, `cuts at ${cut}, ${second}`);
      }
    }
    assert.deepEqual(decodeAll([...stream].map((b) => Buffer.from([b]))), whole);
  });

  test('a frame length over the limit, or too short for type and id, is a protocol error', () => {
    const decoder = new FrameDecoder(1000, () => assert.fail('no frame expected'));
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    writeFrameHeader(header, 0, MessageType.Read, 1, 1000);
    assert.throws(() => decoder.push(header), { code: 'RINGKV_PROTOCOL' });
    const short = Buffer.from([0, 0, 0, 4, 1, 0, 0, 0]);
    assert.throws(() => new FrameDecoder(1000, () => {}).push(short), { code: 'RINGKV_PROTOCOL' });
    // The largest allowed frame passes.
    const frames = decodeAll(
      [encodeFrame({ type: MessageType.Read, key: Buffer.alloc(1000 - FRAME_HEADER_BYTES) }, 1)],
      1000,
    );
    assert.equal(frames.length, 1);
  });

  test('a frame split over chunks reserves memory as its bytes come, not all at its header', () => {
    const max = 8 << 20;
    const received: { id: number; body: Buffer }[] = [];
    const decoder = new FrameDecoder(max, (_type, id, body) =>
      received.push({ id, body: Buffer.from(body) }),
    );
    const body = Buffer.alloc(max - FRAME_HEADER_BYTES, 5);
    const frame = encodeFrame({ type: MessageType.AntiEntropy, body }, 7);
    // A header announcing the largest frame, and a few bytes of it: the peer may send no more.
    decoder.push(frame.subarray(0, 20));
    assert.ok(decoder.reservedBytes <= 64 * 1024, `${decoder.reservedBytes} bytes reserved for 20 received`);
    for (let at = 20; at < frame.length; at += 1 << 20) {
      const end = Math.min(frame.length, at + (1 << 20));
      decoder.push(frame.subarray(at, end));
      if (end < frame.length)
        assert.ok(decoder.reservedBytes <= 2 * end, `${decoder.reservedBytes} for ${end}`);
    }
    assert.equal(received.length, 1);
    assert.equal(received[0]!.id, 7);
    assert.ok(received[0]!.body.equals(body));
    assert.equal(decoder.reservedBytes, 0);
    assert.ok(decoder.idle);
  });

  test('malformed bodies are refused with a reason, unknown types too', () => {
    assert.equal(typeof decodeMessage(0x10, Buffer.alloc(0)), 'string');
    assert.equal(typeof decodeMessage(MessageType.Scan, Buffer.from([0, 0, 0, 1, 2, 0])), 'string');
    assert.equal(typeof decodeMessage(MessageType.Ping, Buffer.from([1])), 'string');
    assert.equal(typeof decodeMessage(MessageType.Batch, Buffer.from([0, 0xff, 0xff, 0xff, 0xff])), 'string');
    const write = encodeBody({
      type: MessageType.Write,
      entry: { key: Buffer.from('k'), version: 1n, kind: 1, expiresAtMs: 0, value: Buffer.from('v') },
    });
    assert.equal(typeof decodeMessage(MessageType.Write, Buffer.concat([write, Buffer.from([0])])), 'string');
    assert.equal(typeof decodeMessage(MessageType.Write, write.subarray(0, write.length - 1)), 'string');
    const badTombstone = encodeBody({
      type: MessageType.Write,
      entry: { key: Buffer.from('k'), version: 1n, kind: 2, expiresAtMs: 0, value: Buffer.from('v') },
    });
    assert.equal(typeof decodeMessage(MessageType.Write, badTombstone), 'string');
    const unknownCode = decodeMessage(MessageType.Error, Buffer.from('\x0bRINGKV_NEWS oops', 'latin1'));
    assert.deepEqual(unknownCode, { type: MessageType.Error, code: 'RINGKV_UNAVAILABLE', message: ' oops' });
  });

  test('decoded keys and values are copies, not views into the received bytes', () => {
    const entry: Entry = {
      key: Buffer.from('key'),
      version: 1n,
      kind: 1,
      expiresAtMs: 0,
      value: Buffer.from('value'),
    };
    const body = encodeBody({ type: MessageType.Write, entry });
    const decoded = decodeMessage(MessageType.Write, body);
    body.fill(0);
    assert.deepEqual(decoded, { type: MessageType.Write, entry });
  });

  test('anti-entropy bodies decode as copies of the received bytes, the type and length framing them', () => {
    for (const type of [MessageType.AntiEntropy, MessageType.AntiEntropyAnswer] as const) {
      const body = Buffer.from('opaque anti-entropy bytes');
      const frame = encodeFrame({ type, body }, 77);
      assert.equal(frame.readUInt32BE(0), 5 + body.length, 'the length covers type, id and body');
      assert.equal(frame[4], type);
      const received = frame.subarray(FRAME_HEADER_BYTES);
      const decoded = decodeMessage(type, received);
      received.fill(0);
      assert.deepEqual(decoded, { type, body: Buffer.from('opaque anti-entropy bytes') });
      assert.deepEqual(decodeMessage(type, Buffer.alloc(0)), { type, body: Buffer.alloc(0) });
    }
    assert.equal(MessageType.AntiEntropy, 0x05);
    assert.equal(MessageType.AntiEntropyAnswer, 0x85);
  });

  test('the encoder packs many frames into one buffer and big ones into their own', () => {
    const encoder = new FrameEncoder();
    const messages: Message[] = [];
    for (let i = 0; i < 500; i++) messages.push({ type: MessageType.Read, key: Buffer.from(`key ${i}`) });
    for (const [i, m] of messages.entries()) encoder.append(m, i);
    const small = encoder.take();
    assert.equal(small.length, 1);
    assert.equal(encoder.frames, 0);
    const big: Message = { type: MessageType.Read, key: Buffer.alloc(200_000, 1) };
    encoder.append(messages[0]!, 1);
    encoder.append(big, 2);
    encoder.append(messages[1]!, 3);
    const mixed = encoder.take();
    assert.ok(mixed.length >= 2);
    const frames = decodeAll([...small, ...mixed]);
    assert.equal(frames.length, 503);
    assert.deepEqual(decodeMessage(frames[501]!.type, frames[501]!.body), big);
    assert.deepEqual(
      frames.slice(0, 500).map((f) => f.id),
      messages.map((_, i) => i),
    );
  });

  test('a scan answer larger than a frame is cut, with more set', () => {
    const entries: Entry[] = Array.from({ length: 10 }, (_, i) => ({
      key: Buffer.from(`k${i}`),
      version: 1n,
      kind: 1,
      expiresAtMs: 0,
      value: Buffer.alloc(100),
    }));
    const fits = fitBatch({ entries, more: false }, 10_000);
    assert.deepEqual(fits, { type: MessageType.Batch, entries, more: false });
    const cut = fitBatch({ entries, more: false }, 400);
    assert.ok(cut.type === MessageType.Batch);
    assert.ok(cut.entries.length >= 1 && cut.entries.length < 10);
    assert.equal(cut.more, true);
    assert.ok(encodeFrame(cut, 1).length <= 400);
  });
});
