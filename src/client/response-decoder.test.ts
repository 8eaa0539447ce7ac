import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../test/support/property.js';
import { isRingkvError } from '../util/errors.js';
import { ConnectionLost } from './errors.js';
import { type DecoderEvent, ResponseDecoder } from './response-decoder.js';

/** A chunked answer as node:http writes one: one chunk per payload, then the last chunk. */
function chunkedAnswer(payloads: readonly Buffer[], extra = ''): Buffer {
  const head = `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n${extra}transfer-encoding: chunked\r\n\r\n`;
  const parts: Buffer[] = [Buffer.from(head)];
  for (const payload of payloads) {
    parts.push(Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Feeds `pieces` one by one, taking every event after each; then the connection's end. */
function decode(pieces: readonly Buffer[], options: { atEnd?: boolean } = {}): DecoderEvent[] {
  const decoder = new ResponseDecoder();
  const events: DecoderEvent[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    for (let event = decoder.next(); event !== undefined; event = decoder.next()) events.push(event);
  }
  if (options.atEnd ?? true) events.push(...decoder.end());
  return events;
}

function cut(bytes: Buffer, at: readonly number[]): Buffer[] {
  const points = [...new Set(at)].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(from, point));
    from = point;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

function chunksOf(events: readonly DecoderEvent[]): Buffer[] {
  return events.flatMap((event) => (event.kind === 'chunk' ? [event.data] : []));
}

test('a chunked answer gives its head, each chunk whole, then its end, cut at any byte', () => {
  const payloads = [Buffer.from('a\nfirst'), Buffer.from('b\n'), Buffer.from('c\nwith\r\nnewlines\n')];
  const bytes = chunkedAnswer(payloads);
  for (let at = 0; at <= bytes.length; at++) {
    const events = decode(cut(bytes, [at]));
    const head = events[0];
    assert.ok(head?.kind === 'head', `cut at ${at}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual(chunksOf(events), payloads, `cut at ${at}`);
    assert.equal(events.at(-1)?.kind, 'end');
  }
});

test('property: any payloads, cut anywhere, come out exactly as sent', () => {
  const payload = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => Buffer.from(bytes));
  fc.assert(
    fc.property(
      fc.array(payload, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (payloads, cuts) => {
        const bytes = chunkedAnswer(payloads, 'x-extra: 1\r\n');
        const events = decode(
          cut(
            bytes,
            cuts.map((c) => c % (bytes.length + 1)),
          ),
        );
        assert.deepEqual(chunksOf(events), payloads);
        assert.equal(events.at(-1)?.kind, 'end');
      },
    ),
    propertyParams({ numRuns: 300 }),
  );
});

test('a Content-Length body comes whole; a 503 with its reason', () => {
  const reason = 'Node is shutting down';
  const bytes = Buffer.from(
    `HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: ${reason.length}\r\n\r\n${reason}`,
  );
  for (let at = 0; at <= bytes.length; at++) {
    const events = decode(cut(bytes, [at]), { atEnd: false });
    assert.equal(events[0]?.kind === 'head' && events[0].status, 503);
    assert.equal(events[0]?.kind === 'head' && events[0].headers.get('connection'), 'close');
    assert.equal(Buffer.concat(chunksOf(events)).toString(), reason);
    assert.equal(events.at(-1)?.kind, 'end');
  }
});

test('a body without a length ends with the connection', () => {
  const events = decode([Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\nBad '), Buffer.from('ack')]);
  assert.equal(Buffer.concat(chunksOf(events)).toString(), 'Bad ack');
  assert.equal(events.at(-1)?.kind, 'end');
});

test('an answer without a body by its status (1xx, 204, 304) ends at its head, with the connection still open', () => {
  for (const status of [100, 204, 304]) {
    const events = decode([Buffer.from(`HTTP/1.1 ${status} X\r\nlocation: /elsewhere\r\n\r\n`)], {
      atEnd: false,
    });
    assert.deepEqual(
      events.map((e) => e.kind),
      ['head', 'end'],
      String(status),
    );
  }
});

test('a connection that ends before the answer does is ConnectionLost', () => {
  const bytes = chunkedAnswer([Buffer.from('a\n1')]);
  // Every cut before the last chunk's final CRLF leaves the answer incomplete.
  for (const at of [0, 10, bytes.length - 5, bytes.length - 1]) {
    assert.throws(() => decode([bytes.subarray(0, at)]), ConnectionLost, `cut at ${at}`);
  }
});

test('malformed answers are protocol errors', () => {
  const bad = [
    'HTTP/2 200 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nabc\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n',
  ];
  for (const text of bad) {
    assert.throws(
      () => decode([Buffer.from(text)]),
      (err) => isRingkvError(err, 'RINGKV_PROTOCOL'),
      JSON.stringify(text),
    );
  }
  assert.throws(
    () => decode([Buffer.from(`HTTP/1.1 200 OK\r\nx: ${'y'.repeat(70_000)}`)], { atEnd: false }),
    (err) => isRingkvError(err, 'RINGKV_PROTOCOL'),
  );
});

test('a chunk is a copy, not a view of the bytes pushed', () => {
  const bytes = chunkedAnswer([Buffer.from('k\nv')]);
  const events = decode([bytes]);
  const [chunk] = chunksOf(events);
  bytes.fill(0);
  assert.equal(chunk!.toString(), 'k\nv');
});
