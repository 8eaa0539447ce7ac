/**
 * Request framing as a hostile client tests it: raw bytes over a socket to
 * an in-process server, on both request paths (the fast path in front, and
 * node:http alone), which must answer the same bytes the same way: every
 * refusal a status with a one-line reason, never a hang or a silently wrong
 * answer. Transfer codings other than chunked, HTTP versions other than 1.0
 * and 1.1, bytes that cannot start a request, and heads or bodies that
 * trickle in past their deadlines.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HybridClock } from '../../src/cluster/clock.js';
import { LocalStore } from '../../src/cluster/local-store.js';
import type { Store } from '../../src/cluster/store.js';
import { limits } from '../../src/config/limits.js';
import { HttpServer } from '../../src/http/server.js';
import { MemoryEngine } from '../../src/storage/index.js';
import { RawConnection } from '../support/http-client.js';

/** A full collection, through V8's own gc() taken out of a fresh context. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** A store that records the writes it is given. */
class RecordingStore extends LocalStore {
  readonly puts: string[] = [];

  override put(...args: Parameters<Store['put']>): ReturnType<Store['put']> {
    this.puts.push(`${args[0].toString()}=${args[1].toString('latin1')}`);
    return super.put(...args);
  }
}

for (const fastPath of [true, false])
  describe(`request framing, ${fastPath ? 'fast path in front' : 'node:http alone'}`, () => {
    let server: HttpServer | undefined;
    let store: RecordingStore;
    const connections: RawConnection[] = [];

    async function start(valueBytesMax = 1024): Promise<number> {
      store = new RecordingStore(new MemoryEngine(), new HybridClock());
      server = new HttpServer({
        store,
        nodeUrl: 'http://127.0.0.1:1',
        cluster: ['http://127.0.0.1:1'],
        keyBytesMax: 64,
        valueBytesMax,
        log: () => undefined,
        fastPath,
      });
      await server.listen(0, '127.0.0.1');
      return server.port();
    }

    async function open(port: number): Promise<RawConnection> {
      const conn = await RawConnection.open(port);
      connections.push(conn);
      return conn;
    }

    afterEach(async () => {
      for (const conn of connections.splice(0)) conn.close();
      await server?.close(1000);
      server = undefined;
    });

    describe('a Transfer-Encoding other than chunked alone', () => {
      const cases: [string, string][] = [
        ['gzip, chunked', '3\r\nabc\r\n0\r\n\r\n'],
        ['deflate, chunked', '3\r\nabc\r\n0\r\n\r\n'],
        ['identity, chunked', '3\r\nabc\r\n0\r\n\r\n'],
      ];
      for (const [coding, body] of cases) {
        it(`refuses "${coding}" with 400 and a reason, storing nothing`, async () => {
          const port = await start();
          const conn = await open(port);
          await conn.write(
            `PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${coding}\r\n\r\n${body}`,
          );
          const answer = await conn.readAnswer(2000);
          assert.equal(answer.status, 400);
          assert.equal(answer.body.toString(), 'Unsupported Transfer-Encoding: only chunked is taken, alone');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          assert.deepEqual(store.puts, []);
        });
      }

      it('still takes chunked, in any case, with chunk extensions and trailers', async () => {
        const port = await start();
        const conn = await open(port);
        await conn.write(
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n' +
            '2;name=value\r\nab\r\n1\r\nc\r\n0\r\nX-Trailer: t\r\n\r\n' +
            'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        assert.equal((await conn.readAnswer(2000)).status, 201);
        const got = await conn.readAnswer(2000);
        assert.equal(got.status, 200);
        assert.equal(got.body.toString(), 'abc');
      });
    });

    describe('a body declared and not sent', () => {
      it('reserves no more than its first bytes: 24 heads declaring 4 MiB each hold well under 24 x 4 MiB', async () => {
        const declared = 4 * 1024 * 1024;
        const port = await start(declared);
        const heads = 24;
        // Collected first, so that buffers the tests before left are not freed inside the measure.
        collectGarbage();
        const before = process.memoryUsage().arrayBuffers;
        for (let i = 0; i < heads; i++) {
          const conn = await open(port);
          await conn.write(
            `PUT /v0/entity?id=k${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\nv`,
          );
        }
        // A request on another connection answered: the heads before it have been read.
        await sleep(200);
        const probe = await open(port);
        await probe.write('GET /v0/entity?id=none HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal((await probe.readAnswer(2000)).status, 404);
        collectGarbage();
        const grown = process.memoryUsage().arrayBuffers - before;
        assert.ok(grown < (heads * declared) / 8, `array buffers grew by ${grown} bytes`);
        // Each body still completes, byte for byte.
        const last = connections[heads - 1]!;
        await last.write(Buffer.alloc(declared - 1, 0x61));
        assert.equal((await last.readAnswer(5000)).status, 201);
        assert.equal(store.puts.length, 1);
        assert.equal(store.puts[0], `k${heads - 1}=v${'a'.repeat(declared - 1)}`);
      });
    });

    describe('a header past the first 2,000', () => {
      const filler = 'a: b\r\n'.repeat(2001);
      it('is still checked: a second Host after 2,001 others is 400', async () => {
        const port = await start();
        const conn = await open(port);
        await conn.write(`GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n${filler}Host: y\r\n\r\n`);
        const answer = await conn.readAnswer(2000);
        assert.equal(answer.status, 400);
        assert.equal(answer.body.toString(), 'Duplicate Host header');
      });

      it('is still checked: gzip, chunked after 2,001 others is 400 and stores nothing', async () => {
        const port = await start();
        const conn = await open(port);
        await conn.write(
          `PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n${filler}Transfer-Encoding: gzip, chunked\r\n\r\n` +
            '3\r\nabc\r\n0\r\n\r\n',
        );
        const answer = await conn.readAnswer(2000);
        assert.equal(answer.status, 400);
        assert.equal(answer.body.toString(), 'Unsupported Transfer-Encoding: only chunked is taken, alone');
        assert.deepEqual(store.puts, []);
      });
    });

    describe('an HTTP version other than 1.0 and 1.1', () => {
      const cases: [string, string][] = [
        ['HTTP/2.0', 'GET /v0/entity?id=a HTTP/2.0\r\nHost: x\r\n\r\n'],
        ['HTTP/0.9 (no version)', 'GET /v0/entity?id=a\r\n\r\n'],
        ['HTTP/2.0 PUT', 'PUT /v0/entity?id=a HTTP/2.0\r\nHost: x\r\nContent-Length: 1\r\n\r\nv'],
      ];
      for (const [name, text] of cases) {
        it(`answers ${name} 400 with a reason and acts on nothing`, async () => {
          const port = await start();
          const conn = await open(port);
          await conn.write(text);
          const answer = await conn.readAnswer(2000);
          assert.equal(answer.status, 400);
          assert.equal(answer.body.toString(), 'Malformed request: unsupported HTTP version, use HTTP/1.1');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          assert.deepEqual(store.puts, []);
        });
      }
    });

    describe('bytes that cannot start a request', () => {
      const cases: [string, Buffer][] = [
        [
          'a TLS ClientHello',
          Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
        ],
        ['a NUL byte', Buffer.from([0])],
        ['a lower-case method', Buffer.from('get /v0/entity?id=a HTTP/1.1')],
      ];
      for (const [name, bytes] of cases) {
        it(`answers ${name} 400 at once, without waiting for the rest of a head`, async () => {
          const port = await start();
          const conn = await open(port);
          await conn.write(bytes);
          // At once: well before the head's deadline (limits.httpHeadersTimeoutMs, 10 s).
          const answer = await conn.readAnswer(1000);
          assert.equal(answer.status, 400);
          assert.match(answer.body.toString(), /^Malformed request: /);
          assert.ok(await conn.waitClosed(1000));
        });
      }
    });

    describe('a client that trickles', () => {
      // The deadlines are read as the server starts: shortened for these tests, then put back.
      const timeouts = limits as {
        httpHeadersTimeoutMs: number;
        httpRequestTimeoutMs: number;
        httpKeepAliveTimeoutMs: number;
      };
      const saved = { ...timeouts };
      afterEach(() => {
        timeouts.httpHeadersTimeoutMs = saved.httpHeadersTimeoutMs;
        timeouts.httpRequestTimeoutMs = saved.httpRequestTimeoutMs;
        timeouts.httpKeepAliveTimeoutMs = saved.httpKeepAliveTimeoutMs;
      });

      it('closes a connection that never sends a byte (so never asks for an upgrade either)', async () => {
        // The fast path closes it as an idle keep-alive connection; node:http, as a head not sent in time.
        timeouts.httpKeepAliveTimeoutMs = 200;
        timeouts.httpHeadersTimeoutMs = 300;
        timeouts.httpRequestTimeoutMs = 600;
        const port = await start();
        const conn = await open(port);
        const started = Date.now();
        // The deadline plus the once-a-second check, with room for a slow machine.
        assert.ok(await conn.waitClosed(3000), 'still open 3 s after connecting');
        const ms = Date.now() - started;
        assert.ok(ms >= 150, `closed after ${ms} ms`);
      });

      /** Sends `text` a byte every `everyMs` until the server closes, and returns the first answer. */
      async function trickle(conn: RawConnection, text: string, everyMs: number, forMs: number) {
        const started = Date.now();
        let sent = 0;
        while (!conn.ended && sent < text.length && Date.now() - started < forMs) {
          await conn.write(text[sent++]!).catch(() => undefined);
          await sleep(everyMs);
        }
        return { answer: await conn.readAnswer(500), ms: Date.now() - started, sent };
      }

      it('gets 408 with a reason once the head is past its deadline, on any route', async () => {
        timeouts.httpHeadersTimeoutMs = 300;
        timeouts.httpRequestTimeoutMs = 600;
        const port = await start();
        for (const text of [
          'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n\r\n',
          'GET /v0/status HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890123456789012345678901234567890\r\n\r\n',
        ]) {
          const conn = await open(port);
          const { answer, ms, sent } = await trickle(conn, text, 50, 6000);
          assert.equal(answer.status, 408, text);
          assert.equal(answer.body.toString(), 'Request not received in time');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(sent < text.length, `the whole head went through (${ms} ms)`);
          // The deadline plus the once-a-second check, with room for a slow machine.
          assert.ok(ms < 3000, `answered after ${ms} ms`);
        }
      });

      it('gets 408 with a reason once a body is past the request deadline', async () => {
        timeouts.httpHeadersTimeoutMs = 300;
        timeouts.httpRequestTimeoutMs = 600;
        const port = await start();
        const conn = await open(port);
        await conn.write('PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
        const { answer, ms } = await trickle(conn, 'v'.repeat(100), 50, 6000);
        assert.equal(answer.status, 408);
        assert.equal(answer.body.toString(), 'Request not received in time');
        assert.ok(ms < 3500, `answered after ${ms} ms`);
        assert.deepEqual(store.puts, []);
      });
    });
  });
