/**
 * shared/API.md's HTTP table against one real `ringkv serve` process: every
 * row, every 4xx, the limits, and the range format on the wire.
 *
 * The whole table runs twice, on a node of its own each time: with a new
 * connection per request (`connection: close`, which node:http serves) and
 * over keep-alive connections (which the fast path, src/http/fast/, serves
 * for the entity routes), so that both paths answer every row alike.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { entityPath, httpRequest, RawConnection, rangePath } from '../support/http-client.js';
import { killAllStarted, type NodeProcess, sleep, startNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const MiB = 1024 * 1024;
const VALUE_BYTES_MAX = 8 * MiB;

const CLIENTS = [
  { name: 'a connection per request', keepAlive: false },
  { name: 'keep-alive connections', keepAlive: true },
] as const;

for (const client of CLIENTS)
  describe(`single node HTTP API, ${client.name}`, () => {
    let node: NodeProcess;
    const agent = client.keepAlive ? new Agent({ keepAlive: true, maxSockets: 4 }) : undefined;
    const call = (path: string, options: Parameters<typeof httpRequest>[1] = {}) =>
      httpRequest(`${node.url}${path}`, { agent, ...options });
    const put = (key: string, value: Buffer | string, params: Record<string, string | number> = {}) =>
      call(entityPath(key, params), { method: 'PUT', body: value });
    const get = (key: string, params: Record<string, string | number> = {}) => call(entityPath(key, params));
    const del = (key: string, params: Record<string, string | number> = {}) =>
      call(entityPath(key, params), { method: 'DELETE' });

    before(async () => {
      // A slow request is logged as a warning; on a loaded machine a synced PUT can take over the
      // default 500 ms, and the last test counts warnings to find errors, not slowness.
      node = await startNode({ dataDir: await makeTempDir(), args: ['--slow-request', '10000'] });
    });
    after(async () => {
      agent?.destroy();
      await killAllStarted();
      await removeTempDirs();
    });

    describe('/v0/entity', () => {
      it('PUT answers 201, GET returns the value, DELETE answers 202, then GET is 404', async () => {
        assert.equal((await put('life', 'cycle')).status, 201);
        const read = await get('life');
        assert.equal(read.status, 200);
        assert.equal(read.body.toString(), 'cycle');
        assert.equal(read.headers['content-length'], '5');
        assert.equal((await del('life')).status, 202);
        const gone = await get('life');
        assert.equal(gone.status, 404);
      });

      it('GET of a key never written is 404; DELETE of it is 202', async () => {
        assert.equal((await get('never-written')).status, 404);
        assert.equal((await del('never-written')).status, 202);
        assert.equal((await get('never-written')).status, 404);
      });

      it('the newest write wins, and a PUT after a DELETE brings the key back', async () => {
        await put('overwrite', 'one');
        await put('overwrite', 'two');
        assert.equal((await get('overwrite')).body.toString(), 'two');
        await del('overwrite');
        await put('overwrite', 'three');
        assert.equal((await get('overwrite')).body.toString(), 'three');
      });

      it('stores the empty value', async () => {
        assert.equal((await put('empty', Buffer.alloc(0))).status, 201);
        const read = await get('empty');
        assert.equal(read.status, 200);
        assert.equal(read.body.length, 0);
        // A PUT without any body (no Content-Length, no chunks) is an empty value too.
        await put('empty-no-body', 'x');
        const conn = await RawConnection.open(node.port);
        try {
          await conn.write(`PUT ${entityPath('empty-no-body')} HTTP/1.1\r\nhost: x\r\n\r\n`);
          assert.equal((await conn.readAnswer()).status, 201);
        } finally {
          conn.close();
        }
        const noBody = await get('empty-no-body');
        assert.equal(noBody.status, 200);
        assert.equal(noBody.body.length, 0);
      });

      it('round-trips every byte value and a large random value exactly', async () => {
        const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        assert.equal((await put('bytes', everyByte)).status, 201);
        assert.deepEqual((await get('bytes')).body, everyByte);
        const random = randomBytes(300_000);
        assert.equal((await put('random', random)).status, 201);
        assert.deepEqual((await get('random')).body, random);
      });

      it('round-trips a chunked PUT body', async () => {
        const conn = await RawConnection.open(node.port);
        try {
          await conn.write(
            `PUT ${entityPath('chunked')} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n` +
              '3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n',
          );
          assert.equal((await conn.readAnswer()).status, 201);
        } finally {
          conn.close();
        }
        assert.equal((await get('chunked')).body.toString(), 'abcdefg');
      });

      it('treats keys as UTF-8 strings after form decoding', async () => {
        const key = 'ключ 🔑 &=+%?#/';
        assert.equal((await put(key, 'unicode')).status, 201);
        assert.equal((await get(key)).body.toString(), 'unicode');
        // '+' is a space in form encoding: id=a+b and id=a%20b name one key.
        assert.equal((await call('/v0/entity?id=plus+space', { method: 'PUT', body: 'p' })).status, 201);
        assert.equal((await call('/v0/entity?id=plus%20space')).body.toString(), 'p');
        // Different spellings of one UTF-8 key: lower- and upper-case escapes.
        await call('/v0/entity?id=%c3%a9t%c3%a9', { method: 'PUT', body: 'summer' });
        assert.equal((await call('/v0/entity?id=%C3%A9t%C3%A9')).body.toString(), 'summer');
      });

      it('accepts explicit ack and from within a one-node cluster', async () => {
        assert.equal((await put('explicit', 'v', { ack: 1, from: 1 })).status, 201);
        assert.equal((await get('explicit', { ack: 1, from: 1 })).status, 200);
        assert.equal((await del('explicit', { ack: 1 })).status, 202);
      });

      it('a value with a ttl reads as absent once the ttl has passed', async () => {
        assert.equal((await put('short-lived', 'soon gone', { ttl: 400 })).status, 201);
        assert.equal((await put('long-lived', 'stays', { ttl: 3_600_000 })).status, 201);
        let status = 200;
        for (let attempt = 0; attempt < 100 && status === 200; attempt++) {
          await sleep(100);
          status = (await get('short-lived')).status;
        }
        assert.equal(status, 404);
        assert.equal((await get('long-lived')).status, 200);
        // A fresh PUT without a ttl makes the key live for good.
        await put('short-lived', 'back');
        assert.equal((await get('short-lived')).body.toString(), 'back');
      });

      it('takes any positive integer as a ttl, however long', async () => {
        // 1,000 years, and more ms than a double holds exactly: both live now.
        for (const ttl of ['31536000000000', '999999999999999', '31536000000000000000000']) {
          const answer = await call(`/v0/entity?id=far-future&ttl=${ttl}`, { method: 'PUT', body: ttl });
          assert.equal(answer.status, 201, `ttl=${ttl}: ${answer.body.toString()}`);
          assert.equal((await get('far-future')).body.toString(), ttl);
        }
      });

      it('answers 405 to other methods, with an Allow header', async () => {
        for (const method of ['POST', 'PATCH', 'OPTIONS']) {
          // Framed by Content-Length: node:http sends an OPTIONS body without any framing.
          const answer = await call(entityPath('k'), { method, body: 'x', headers: { 'content-length': 1 } });
          assert.equal(answer.status, 405, method);
          assert.equal(answer.headers.allow, 'GET, PUT, DELETE');
        }
        assert.equal((await call(entityPath('k'), { method: 'HEAD' })).status, 405);
      });
    });

    describe('4xx answers', () => {
      const cases: [string, string, number][] = [
        ['GET', '/v0/entity', 400],
        ['GET', '/v0/entity?id=', 400],
        ['PUT', '/v0/entity?id=', 400],
        ['DELETE', '/v0/entity?id=', 400],
        ['GET', '/v0/entity?key=a', 400],
        ['GET', '/v0/entity?id=a&ack=0', 400],
        ['GET', '/v0/entity?id=a&ack=-1', 400],
        ['GET', '/v0/entity?id=a&ack=1.5', 400],
        ['GET', '/v0/entity?id=a&ack=abc', 400],
        ['GET', '/v0/entity?id=a&ack=01', 400],
        ['PUT', '/v0/entity?id=a&from=0', 400],
        ['PUT', '/v0/entity?id=a&from=2', 400],
        ['PUT', '/v0/entity?id=a&ack=2', 400],
        ['DELETE', '/v0/entity?id=a&ack=2&from=1', 400],
        ['PUT', '/v0/entity?id=a&ttl=0', 400],
        ['PUT', '/v0/entity?id=a&ttl=-100', 400],
        ['PUT', '/v0/entity?id=a&ttl=1.5', 400],
        ['PUT', '/v0/entity?id=a&ttl=later', 400],
        ['GET', '/v0/entity?id=%zz', 400],
        ['GET', '/v0/entity?id=%ff', 400],
        ['GET', '/v0/entities', 400],
        ['GET', '/v0/entities?start=', 400],
        ['GET', '/v0/entities?end=z', 400],
        ['GET', '/nope', 400],
        ['GET', '/v0', 400],
        ['GET', '/v0/entity/a', 400],
        ['GET', '/v1/entity?id=a', 400],
        ['GET', '/v0/entityx?id=a', 400],
        ['GET', '/v0/internode', 400],
        ['GET', '/v0/internode/ping', 400],
        ['POST', '/v0/status', 400],
        ['GET', '/v0/health?ready=2', 400],
        ['GET', '/v0/health?ready=yes', 400],
        ['POST', '/v0/health', 405],
        ['DELETE', '/v0/health', 405],
        ['PUT', '/v0/entities?start=a', 400],
        ['DELETE', '/v0/entities?start=a', 400],
      ];
      for (const [method, path, status] of cases) {
        it(`${method} ${path} -> ${status} with a short text reason`, async () => {
          const answer = await call(path, { method });
          assert.equal(answer.status, status);
          assert.match(String(answer.headers['content-type']), /^text\/plain/);
          const text = answer.body.toString();
          assert.ok(text.length > 0 && text.length < 200 && !text.includes('\n'), `body: ${text}`);
        });
      }

      it('refuses a bad request without storing anything', async () => {
        assert.equal((await put('refused', 'x', { ttl: 0 })).status, 400);
        assert.equal((await get('refused')).status, 404);
      });

      it('answers 414 to a key over 1024 bytes and accepts one of exactly 1024', async () => {
        assert.equal((await put('k'.repeat(1024), 'fits')).status, 201);
        assert.equal((await get('k'.repeat(1024))).body.toString(), 'fits');
        assert.equal((await put('k'.repeat(1025), 'too long')).status, 414);
        assert.equal((await get('k'.repeat(1025))).status, 414);
        assert.equal((await del('k'.repeat(1025))).status, 414);
        // Bytes count, not characters: 513 two-byte characters are 1026 bytes.
        assert.equal((await get('é'.repeat(513))).status, 414);
        assert.equal((await get('é'.repeat(512))).status, 404);
      });

      it('answers 400 to a request with two Host headers, and closes its connection', async () => {
        const conn = await RawConnection.open(node.port);
        try {
          // On a keep-alive connection a plain request first, so that the fast path holds it.
          const first = client.keepAlive ? `GET ${entityPath('two-hosts')} HTTP/1.1\r\nhost: x\r\n\r\n` : '';
          await conn.write(
            `${first}PUT ${entityPath('two-hosts')} HTTP/1.1\r\nhost: x\r\nhost: y\r\ncontent-length: 2\r\n\r\nok`,
          );
          if (client.keepAlive) assert.equal((await conn.readAnswer()).status, 404);
          const answer = await conn.readAnswer();
          assert.equal(answer.status, 400);
          assert.equal(answer.body.toString(), 'Duplicate Host header');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(5000));
        } finally {
          conn.close();
        }
        assert.equal((await get('two-hosts')).status, 404);
      });

      it('refuses an HTTP Upgrade', async () => {
        const conn = await RawConnection.open(node.port);
        try {
          await conn.write(
            'GET /v0/status HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ringkv\r\n\r\n',
          );
          assert.equal((await conn.readAnswer()).status, 400);
        } finally {
          conn.close();
        }
      });
    });

    describe('413: values over the limit', () => {
      it('accepts a value of exactly the limit', async () => {
        const value = Buffer.alloc(VALUE_BYTES_MAX, 7);
        assert.equal((await put('at-limit', value)).status, 201);
        const read = await get('at-limit');
        assert.equal(read.status, 200);
        assert.equal(read.body.length, VALUE_BYTES_MAX);
        assert.ok(read.body.every((byte) => byte === 7));
      });

      it('answers 413 from Content-Length and keeps the connection usable', async () => {
        const conn = await RawConnection.open(node.port);
        try {
          const body = Buffer.alloc(VALUE_BYTES_MAX + 1, 1);
          await conn.write(
            `PUT ${entityPath('too-large')} HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`,
          );
          await conn.write(body);
          const refused = await conn.readAnswer();
          assert.equal(refused.status, 413);
          assert.notEqual(refused.headers.connection, 'close');
          // The same socket carries the next request.
          await conn.write(
            `PUT ${entityPath('after-413')} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok`,
          );
          assert.equal((await conn.readAnswer()).status, 201);
          await conn.write(`GET ${entityPath('after-413')} HTTP/1.1\r\nhost: x\r\n\r\n`);
          const read = await conn.readAnswer();
          assert.equal(read.status, 200);
          assert.equal(read.body.toString(), 'ok');
        } finally {
          conn.close();
        }
        assert.equal((await get('too-large')).status, 404);
      });

      it('answers 413 to a chunked body that grows past the limit and keeps the connection usable', async () => {
        const conn = await RawConnection.open(node.port);
        try {
          await conn.write(
            `PUT ${entityPath('too-large-chunked')} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n`,
          );
          const chunk = Buffer.alloc(MiB, 2);
          for (let i = 0; i < 9; i++) {
            await conn.write(`${chunk.length.toString(16)}\r\n`);
            await conn.write(chunk);
            await conn.write('\r\n');
          }
          await conn.write('0\r\n\r\n');
          assert.equal((await conn.readAnswer()).status, 413);
          await conn.write(`GET /v0/status HTTP/1.1\r\nhost: x\r\n\r\n`);
          assert.equal((await conn.readAnswer()).status, 200);
        } finally {
          conn.close();
        }
        assert.equal((await get('too-large-chunked')).status, 404);
      });
    });

    describe('/v0/entities', () => {
      /** Reads a range over a raw connection, so that chunk boundaries are visible. */
      async function range(path: string): Promise<string[]> {
        const conn = await RawConnection.open(node.port);
        try {
          await conn.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
          const answer = await conn.readAnswer();
          assert.equal(answer.status, 200);
          assert.equal(answer.headers['transfer-encoding'], 'chunked');
          return answer.chunks!.map((chunk) => chunk.toString('utf8'));
        } finally {
          conn.close();
        }
      }

      // Keys under a prefix above every other key of this file, so that a range without
      // end sees only these: U+10FFFF is F4 8F BF BF, the largest UTF-8 there is.
      const P = '\u{10FFFF}';

      before(async () => {
        // Written out of order; ranges answer in key (byte) order.
        for (const key of ['r/d', 'r/b', 'r/a', 'r/e', 'r/c', 'r/é', 'r/z', 's/outside', 'r.before']) {
          assert.equal((await put(P + key, `value of ${key}`)).status, 201);
        }
        await put(`${P}r/multi\nline`, 'a\nb');
        await put(`${P}r/empty`, '');
        await del(`${P}r/c`);
        await put(`${P}r/gone`, 'x');
        await del(`${P}r/gone`);
        await put(`${P}r/ttl`, 'short', { ttl: 100 });
      });

      it('streams [start, end) in key order, one chunk per entry, each key \\n value', async () => {
        assert.deepEqual(await range(rangePath(`${P}r/a`, `${P}r/e`)), [
          `${P}r/a\nvalue of r/a`,
          `${P}r/b\nvalue of r/b`,
          `${P}r/d\nvalue of r/d`,
        ]);
      });

      it('without end, streams to the last key; deletes and expired values are left out', async () => {
        // Let the ttl pass (polling a point read, bounded).
        for (let attempt = 0; attempt < 50 && (await get(`${P}r/ttl`)).status === 200; attempt++)
          await sleep(50);
        const chunks = await range(rangePath(`${P}r/`));
        assert.deepEqual(chunks, [
          `${P}r/a\nvalue of r/a`,
          `${P}r/b\nvalue of r/b`,
          `${P}r/d\nvalue of r/d`,
          `${P}r/e\nvalue of r/e`,
          `${P}r/empty\n`,
          `${P}r/multi\nline\na\nb`,
          `${P}r/z\nvalue of r/z`,
          `${P}r/é\nvalue of r/é`,
          `${P}s/outside\nvalue of s/outside`,
        ]);
      });

      it('orders keys by their UTF-8 bytes, not by UTF-16 code units', async () => {
        // U+FFFD is EF BF BD, U+10000 is F0 90 80 80; in UTF-16 the latter (D800 DC00) sorts first.
        await put(`${P}o/\u{10000}`, 'astral');
        await put(`${P}o/\uFFFD`, 'bmp');
        await put(`${P}o/~`, 'ascii');
        assert.deepEqual(await range(rangePath(`${P}o/`, `${P}o0`)), [
          `${P}o/~\nascii`,
          `${P}o/\uFFFD\nbmp`,
          `${P}o/\u{10000}\nastral`,
        ]);
        // end is exclusive in the same order: [U+FFFD, U+10000) holds U+FFFD only.
        assert.deepEqual(await range(rangePath(`${P}o/\uFFFD`, `${P}o/\u{10000}`)), [`${P}o/\uFFFD\nbmp`]);
      });

      it('answers an empty range with an empty chunked body', async () => {
        assert.deepEqual(await range(rangePath(`${P}r/f`, `${P}r/g`)), []);
        // An empty end: no key is below it.
        assert.deepEqual(await range(`${rangePath(`${P}r/`)}&end=`), []);
        assert.deepEqual(await range(`${rangePath(`${P}r/`)}&end=&scope=cluster`), []);
        assert.deepEqual(await range(rangePath(`${P}t`)), []);
      });

      it('delivers binary values byte for byte', async () => {
        const value = randomBytes(200_000);
        await put('bin/1', value);
        const answer = await call(rangePath('bin/', 'bin0'));
        assert.equal(answer.status, 200);
        assert.deepEqual(answer.body, Buffer.concat([Buffer.from('bin/1\n'), value]));
      });

      it('goes on just after a key of the longest length: its bytes and a 0 byte start the range', async () => {
        // What a client sends to resume a range cut short right after such a key.
        const longest = `${P}u/${'k'.repeat(1024 - Buffer.byteLength(`${P}u/`))}`;
        assert.equal((await put(longest, 'long')).status, 201);
        assert.equal((await put(`${P}v`, 'next')).status, 201);
        assert.deepEqual(await range(rangePath(`${P}u/`, `${longest}\0`)), [`${longest}\nlong`]);
        assert.deepEqual(await range(rangePath(`${longest}\0`)), [`${P}v\nnext`]);
        assert.equal((await call(rangePath(`${longest}\0\0`))).status, 414);
      });

      it('accepts scope=cluster on a one-node cluster and answers the same', async () => {
        const local = await call(rangePath(`${P}r/a`, `${P}r/e`));
        const cluster = await call(`${rangePath(`${P}r/a`, `${P}r/e`)}&scope=cluster`);
        assert.equal(local.body.toString().split('\n').length, 4);
        assert.equal(cluster.status, 200);
        assert.deepEqual(cluster.body, local.body);
      });
    });

    describe('/v0/health', () => {
      it('answers 200 {"status":"ok"} as JSON', async () => {
        const answer = await call('/v0/health');
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(answer.body.toString()), { status: 'ok' });
      });

      // The node is ready by now (startNode waited for /v0/status, which is 503 until then): the 503
      // "starting" before is test/node/node.test.ts's, with a peer that holds the start up.
      it('answers ready=1 with 200 {"status":"ready"} once the node is ready', async () => {
        const answer = await call('/v0/health?ready=1');
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(answer.body.toString()), { status: 'ready' });
      });

      it('is counted in /v0/status', async () => {
        const before = JSON.parse((await call('/v0/status')).body.toString()).requests.health as number;
        assert.equal((await call('/v0/health')).status, 200);
        const after = JSON.parse((await call('/v0/status')).body.toString()).requests.health as number;
        assert.equal(after, before + 1);
      });
    });

    describe('/v0/status', () => {
      it('answers 200 with JSON about the node', async () => {
        const answer = await call('/v0/status');
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-type'], 'application/json');
        const status = JSON.parse(answer.body.toString()) as Record<string, unknown>;
        assert.equal(status.node, node.url);
        assert.deepEqual(status.cluster, [node.url]);
        assert.equal(status.pid, node.pid);
        assert.equal(typeof status.uptimeMs, 'number');
        const requests = status.requests as Record<string, unknown>;
        assert.ok((requests.put as number) > 0);
        assert.ok((requests.get as number) > 0);
        const store = status.store as Record<string, unknown>;
        assert.equal(typeof store.engine, 'object');
        // The process's CPU time so far (µs): it has served requests, so some of it is user time.
        const cpu = status.cpu as { user: number; system: number };
        assert.ok(Number.isInteger(cpu.user) && cpu.user > 0, JSON.stringify(cpu));
        assert.ok(Number.isInteger(cpu.system) && cpu.system >= 0, JSON.stringify(cpu));
      });
    });

    it('is still alive and well after all of the above', async () => {
      assert.equal(node.exit, undefined);
      const status = await call('/v0/status');
      assert.equal(status.status, 200);
      // Nothing worth a warning was logged: only info records (ready) on stderr.
      const records = node.stderr
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { level: string; event: string });
      assert.deepEqual(
        records.filter((r) => r.level !== 'info'),
        [],
      );
      assert.ok(records.some((r) => r.event === 'node.ready'));
      // Which path answered: keep-alive entity requests take the fast path (until a
      // connection is handed to node:http); with `connection: close` only the few
      // raw keep-alive connections of the tests above do.
      const requests = JSON.parse(status.body.toString()).requests as Record<string, number>;
      if (client.keepAlive) assert.ok(requests.fastPath! > 20, JSON.stringify(requests));
      else assert.ok(requests.fastPath! < 10, JSON.stringify(requests));
    });
  });
