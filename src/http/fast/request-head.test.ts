import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { HAND_OVER, Method, NEED_MORE, parseRequestHead, type RequestHead } from './request-head.js';

const MAX = 16 * 1024;

function parse(text: string, start = 0): ReturnType<typeof parseRequestHead> {
  return parseRequestHead(Buffer.from(text, 'latin1'), start, MAX);
}

function head(text: string): RequestHead {
  const parsed = parse(text);
  assert.ok(typeof parsed === 'object', `expected a head for ${JSON.stringify(text)}, got ${parsed}`);
  return parsed;
}

describe('parseRequestHead', () => {
  it('reads the plain entity requests', () => {
    assert.deepEqual(head('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'), {
      method: Method.Get,
      target: '/v0/entity?id=a',
      contentLength: 0,
      headEnd: 41,
    });
    const put = head('PUT /v0/entity?id=a%20b&ack=1 HTTP/1.1\r\nhost: x\r\nContent-Length:  12 \r\n\r\nbody');
    assert.equal(put.method, Method.Put);
    assert.equal(put.target, '/v0/entity?id=a%20b&ack=1');
    assert.equal(put.contentLength, 12);
    const del = head(
      'DELETE /v0/entity?id=a HTTP/1.1\r\nHOST: x\r\nconnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n',
    );
    assert.equal(del.method, Method.Delete);
    // No query at all: the route answers 400 for the missing id.
    assert.equal(head('GET /v0/entity HTTP/1.1\r\nHost: x\r\n\r\n').target, '/v0/entity');
  });

  it('reads a head that starts inside the buffer, after an earlier request', () => {
    const first = 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n';
    const both = `${first}PUT /v0/entity?id=b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz`;
    const second = parse(both, first.length);
    assert.ok(typeof second === 'object');
    assert.equal(second.target, '/v0/entity?id=b');
    assert.equal(second.headEnd, both.length - 1);
  });

  it('asks for more until the blank line has arrived', () => {
    const text = 'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n';
    for (let cut = 0; cut < text.length; cut++)
      assert.equal(parse(text.slice(0, cut)), NEED_MORE, `cut ${cut}`);
    assert.equal(head(text).contentLength, 3);
  });

  const handedOver: [string, string][] = [
    ['another method', 'POST /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['HEAD', 'HEAD /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a lower-case method', 'get /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['another path', 'GET /v0/status HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a longer path', 'GET /v0/entities?start=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['an absolute target', 'GET http://x/v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['HTTP/1.0', 'GET /v0/entity?id=a HTTP/1.0\r\nHost: x\r\n\r\n'],
    ['a control byte in the target', 'GET /v0/entity?id=a\x01 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a non-ASCII target byte', 'GET /v0/entity?id=\xe9 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['two spaces', 'GET  /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['no Host', 'GET /v0/entity?id=a HTTP/1.1\r\nAccept: */*\r\n\r\n'],
    ['two Hosts', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n'],
    ['Transfer-Encoding', 'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'],
    [
      'Expect',
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n',
    ],
    ['Upgrade', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: ringkv\r\n\r\n'],
    ['Proxy-Connection', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n'],
    [
      'a tab after the Content-Length',
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\t\r\n\r\nz',
    ],
    [
      'a tab before the Content-Length',
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length:\t1\r\n\r\nz',
    ],
    ['Connection: close', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['a list in Connection', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, te\r\n\r\n'],
    [
      'two Content-Lengths',
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz',
    ],
    ['a signed Content-Length', 'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nz'],
    ['an empty Content-Length', 'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n'],
    [
      'a 16-digit Content-Length',
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n',
    ],
    ['a GET with a body', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz'],
    ['a DELETE with a body', 'DELETE /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz'],
    ['a bare LF', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\n'],
    ['a bare CR', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\rAccept: */*\r\n\r\n'],
    ['a folded line', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nAccept: a,\r\n b\r\n\r\n'],
    ['a space before the colon', 'GET /v0/entity?id=a HTTP/1.1\r\nHost : x\r\n\r\n'],
    ['no colon', 'GET /v0/entity?id=a HTTP/1.1\r\nHost x\r\n\r\n'],
    ['an empty name', 'GET /v0/entity?id=a HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n'],
    ['a NUL in a value', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nAccept: a\x00b\r\n\r\n'],
    ['a DEL in a value', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nAccept: a\x7fb\r\n\r\n'],
    ['no request line', '\r\n\r\n'],
    ['a request line only, cut short', 'GET /v0/entity?id=a\r\n\r\n'],
  ];
  for (const [what, text] of handedOver) {
    it(`hands over ${what}`, () => assert.equal(parse(text), HAND_OVER));
  }

  it('hands over an unfinished head with a bare LF or CR at once, rather than wait for CRLFCRLF', () => {
    assert.equal(parse('GET /v0/entity?id=a HTTP/1.1\nHost: x\n\n'), HAND_OVER);
    assert.equal(parse('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\rA'), HAND_OVER);
    assert.equal(parse('\nGET /v0/entity?id=a HTTP/1.1\r\n'), HAND_OVER);
    // A CR that is the last byte so far may still be followed by its LF.
    assert.equal(parse('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r'), NEED_MORE);
  });

  it('hands over an unfinished head at once when no request it takes starts so', () => {
    for (const text of [
      '\x16\x03\x01',
      'get /v0/entity?id=a',
      'POST /v0/entity?id=a HTTP/1.1\r\n',
      'GET /v0/entities',
    ]) {
      assert.equal(parse(text), HAND_OVER, JSON.stringify(text));
    }
    for (const text of ['', 'G', 'DELE', 'PUT /v0/ent', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n']) {
      assert.equal(parse(text), NEED_MORE, JSON.stringify(text));
    }
  });

  it('hands over a head longer than the limit, finished or not', () => {
    const long = `GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`;
    assert.equal(parseRequestHead(Buffer.from(long), 0, 100), HAND_OVER);
    assert.equal(parseRequestHead(Buffer.from(long.slice(0, 150)), 0, 100), HAND_OVER);
    assert.equal(parseRequestHead(Buffer.from(long.slice(0, 90)), 0, 100), NEED_MORE);
    assert.equal(typeof parseRequestHead(Buffer.from(long), 0, long.length), 'object');
  });

  it('takes header values of obs-text and tabs, and trims their outer whitespace', () => {
    const put = head(
      'PUT /v0/entity?id=a HTTP/1.1\r\nHost:\tx\r\nUser-Agent: caf\xe9\t1\t\r\ncontent-length:  7  \r\n\r\n',
    );
    assert.equal(put.contentLength, 7);
  });

  it('never throws, and anything it takes is a complete, well-formed head (property)', () => {
    const pieces = fc.constantFrom(
      'GET ',
      'PUT ',
      'DELETE ',
      '/v0/entity',
      '?id=',
      'a',
      ' HTTP/1.1',
      '\r\n',
      '\r',
      '\n',
      'Host: x',
      'Content-Length: ',
      '12',
      'Connection: keep-alive',
      ':',
      ' ',
      '\t',
      '\x00',
      '\xff',
    );
    // Random pieces alone almost never make a head it takes: most cases are whole heads, then damaged
    // by a few pieces put in at random places, after bytes of an earlier request.
    const requestLine = fc.constantFrom(
      'GET /v0/entity?id=a HTTP/1.1',
      'PUT /v0/entity?id=a HTTP/1.1',
      'DELETE /v0/entity?id=a HTTP/1.1',
      'GET /v0/entity HTTP/1.0',
      'POST /v0/entity?id=a HTTP/1.1',
    );
    const headerLine = fc.constantFrom(
      'Content-Length: 12',
      'Content-Length: 0',
      'Connection: keep-alive',
      'Accept: */*',
      'X-A: caf\xe9\t1',
    );
    const whole = fc
      .tuple(
        fc.array(pieces, { maxLength: 4 }),
        requestLine,
        fc.array(headerLine, { maxLength: 3 }),
        fc.nat(3),
        fc.array(fc.tuple(fc.nat(), pieces), { maxLength: 2 }),
      )
      .map(([before, line, headers, hostAt, damage]) => {
        const lines: string[] = [...headers];
        lines.splice(hostAt, 0, 'Host: x');
        let text = `${[line, ...lines].join('\r\n')}\r\n\r\n`;
        for (const [at, piece] of damage) {
          const i = at % (text.length + 1);
          text = text.slice(0, i) + piece + text.slice(i);
        }
        const earlier = before.join('');
        return { text: earlier + text, start: earlier.length };
      });
    const loose = fc
      .tuple(fc.array(pieces, { maxLength: 24 }), fc.nat(8))
      .map(([parts, start]) => ({ text: parts.join(''), start }));
    let taken = 0;
    fc.assert(
      fc.property(
        fc.oneof({ arbitrary: whole, weight: 3 }, { arbitrary: loose, weight: 1 }),
        ({ text, start }) => {
          const buf = Buffer.from(text, 'latin1');
          const from = Math.min(start, buf.length);
          const parsed = parseRequestHead(buf, from, MAX);
          if (typeof parsed !== 'object') return;
          taken++;
          const headText = text.slice(from, parsed.headEnd);
          assert.ok(headText.endsWith('\r\n\r\n'));
          assert.ok(/^(GET|PUT|DELETE) \/v0\/entity[?\S]* HTTP\/1\.1\r\n/.test(headText), headText);
          assert.equal(headText.replace(/\r\n/g, '').includes('\r'), false);
          assert.equal(headText.replace(/\r\n/g, '').includes('\n'), false);
          assert.equal(headText.match(/\r\nhost:/gi)?.length, 1);
          assert.equal(headText.slice(0, headText.indexOf('\r\n')).split(' ')[1], parsed.target);
          if (parsed.method !== Method.Put) assert.equal(parsed.contentLength, 0);
        },
      ),
      propertyParams({ numRuns: 3000 }),
    );
    assert.ok(taken > 150, `only ${taken} of 3000 cases were taken: the property checked too little`);
  });
});
