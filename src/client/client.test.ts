/**
 * RingkvClient against stand-in nodes (node:http servers in this process)
 * that answer what a real node can, and what it does when it fails: the
 * leaving 503, a reset, a hang, a range cut short. test/e2e/client.test.ts
 * runs the client against real nodes.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { answer, type Handler } from '../../test/support/answers.js';
import { freePort } from '../../test/support/ports.js';
import { isRingkvError } from '../util/errors.js';
import {
  BadRequestError,
  RingkvClient,
  type ScanEntry,
  ServerError,
  TimeoutError,
  UnavailableError,
} from './index.js';

interface StandIn {
  readonly url: string;
  readonly server: Server;
  /** Request targets seen, in order. */
  readonly seen: string[];
  connections: number;
}

const servers: Server[] = [];

after(() => {
  for (const server of servers) server.close();
  for (const server of servers) server.closeAllConnections();
});

async function standIn(handler: Handler): Promise<StandIn> {
  const seen: string[] = [];
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  servers.push(server);
  const node: StandIn = { url: '', server, seen, connections: 0 };
  server.on('connection', () => node.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(node, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

/** A range answer as a node writes it: one chunk per entry, key '\n' value. */
function rangeOf(entries: readonly (readonly [string, string])[]): Handler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (const [key, value] of entries) res.write(`${key}\n${value}`);
    res.end();
  };
}

async function collect<T>(entries: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const entry of entries) out.push(entry);
  return out;
}

describe('RingkvClient (stand-in nodes)', () => {
  it('sends ack, from, ttl and the key as the server decodes them, and reads each answer', async () => {
    const node = await standIn((req, res) => {
      if (req.method === 'GET' && req.url!.includes('missing')) return answer(404, 'Not found')(req, res);
      answer(req.method === 'GET' ? 200 : req.method === 'PUT' ? 201 : 202, 'v')(req, res);
    });
    const client = new RingkvClient({ nodes: node.url, ack: 1, from: 2 });
    assert.deepEqual(await client.get('a b/é'), Buffer.from('v'));
    assert.equal(await client.get('missing'), undefined);
    assert.equal(await client.get('k', { encoding: 'utf8', ack: 2 }), 'v');
    await client.put(Buffer.from([0x6b, 0x0a]), 'x', { ttl: 500 });
    await client.put('t', 'x', { ttl: 1e21 });
    await client.delete('k', { from: 3 });
    assert.deepEqual(node.seen, [
      'GET /v0/entity?id=a%20b%2F%C3%A9&ack=1&from=2',
      'GET /v0/entity?id=missing&ack=1&from=2',
      'GET /v0/entity?id=k&ack=2&from=2',
      'PUT /v0/entity?id=k%0A&ack=1&from=2&ttl=500',
      'PUT /v0/entity?id=t&ack=1&from=2&ttl=1000000000000000000000',
      'DELETE /v0/entity?id=k&ack=1&from=3',
    ]);
  });

  it("reuses keep-alive connections through fetch's own pool", async () => {
    const node = await standIn(answer(200, 'v'));
    const client = new RingkvClient({ nodes: [node.url] });
    for (let i = 0; i < 100; i++) await client.get(`k${i}`);
    // undici frees a connection a moment after its answer's body ends, so a request sent at once
    // opens a second one; from then on the two take turns.
    assert.ok(node.connections <= 2, `100 requests one after another: ${node.connections} connections`);
    for (let round = 0; round < 25; round++) {
      await Promise.all(Array.from({ length: 4 }, (_, i) => client.put(`p${i}`, 'v')));
    }
    assert.ok(node.connections <= 8, `25 rounds of 4 at once: ${node.connections} connections`);
  });

  it('fails over on the leaving 503, a refused connection and a reset, then prefers the node that answered', async () => {
    const leaving = await standIn(answer(503, 'Node is shutting down', { connection: 'close' }));
    const reset = await standIn((req) => req.socket.destroy());
    const healthy = await standIn(answer(200, 'v'));
    const refused = `http://127.0.0.1:${await freePort()}`;
    const client = new RingkvClient({ nodes: [leaving.url, refused, reset.url, healthy.url] });
    assert.deepEqual(await client.get('k'), Buffer.from('v'));
    assert.equal(leaving.seen.length, 1);
    assert.equal(reset.seen.length, 1);
    await client.get('k');
    assert.equal(leaving.seen.length, 1, 'the next request goes to the node that answered first');
    assert.equal(healthy.seen.length, 2);
  });

  it('answers a 504 and other statuses without failing over, as typed errors', async () => {
    const first = await standIn((req, res) => {
      const status = Number(new URL(req.url!, 'http://x').searchParams.get('id'));
      answer(status, `reason ${status}`)(req, res);
    });
    const second = await standIn(answer(200, 'v'));
    const client = new RingkvClient({ nodes: [first.url, second.url] });
    const cases = [
      [504, UnavailableError, 'RINGKV_NOT_ENOUGH_REPLICAS'],
      [400, BadRequestError, 'RINGKV_BAD_REQUEST'],
      [413, BadRequestError, 'RINGKV_VALUE_TOO_LARGE'],
      [414, BadRequestError, 'RINGKV_KEY_TOO_LONG'],
      [500, ServerError, 'RINGKV_SERVER'],
    ] as const;
    for (const [status, type, code] of cases) {
      await assert.rejects(client.get(String(status)), (err) => {
        assert.ok(err instanceof type, `${status}: ${err}`);
        assert.ok(isRingkvError(err, code));
        assert.equal(err.status, status);
        assert.equal(err.reason, `reason ${status}`);
        assert.equal(err.node, first.url);
        return true;
      });
    }
    assert.equal(second.seen.length, 0);
  });

  it('a 413 whose connection is cut before its reason is still the 413, not asked of the next node', async () => {
    // As a node may do while an oversized value is still arriving: the head and part of the body, then a cut.
    const cut = await standIn((req, res) => {
      res.writeHead(413, { 'content-type': 'text/plain', 'content-length': 40 });
      res.write('Value too large', () => req.socket.destroy());
    });
    const second = await standIn(answer(201));
    const client = new RingkvClient({ nodes: [cut.url, second.url] });
    await assert.rejects(client.put('k', 'v'), (err) => {
      assert.ok(err instanceof BadRequestError, String(err));
      assert.ok(isRingkvError(err, 'RINGKV_VALUE_TOO_LARGE'));
      assert.equal(err.status, 413);
      assert.equal(err.node, cut.url);
      return true;
    });
    assert.equal(cut.seen.length, 1);
    assert.equal(second.seen.length, 0);
  });

  it('an answer whose body is cut after its status is never sent to the next node', async () => {
    // The node answered (the write is stored); only the reason text after the head is lost.
    const cut = await standIn((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = req.method === 'PUT' ? 201 : req.method === 'DELETE' ? 202 : 200;
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': 40 });
        res.write('Stor', () => req.socket.destroy());
      });
    });
    // The next node would refuse a write (were one sent again) and answers a read.
    const second = await standIn((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET') res.writeHead(200).end('v2');
        else res.writeHead(504).end('Only 1 of 2 required replicas answered');
      });
    });
    const client = new RingkvClient({ nodes: [cut.url, second.url] });
    await client.put('k', 'v');
    await client.delete('k');
    assert.deepEqual(second.seen, [], 'no write was sent again');
    // A value cut short is read again from the next node: a read is safe to repeat.
    assert.equal(await client.get('k', { encoding: 'utf8' }), 'v2');
    assert.equal(cut.seen.length, 3);
    assert.equal(second.seen.length, 1);
  });

  it('gives UnavailableError when every node refuses or is leaving', async () => {
    const leaving = await standIn(answer(503, 'Node is shutting down', { connection: 'close' }));
    const refused = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(new RingkvClient({ nodes: [refused, leaving.url] }).put('k', 'v'), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.code, 'RINGKV_UNAVAILABLE');
      assert.equal(err.status, 503);
      assert.equal(err.reason, 'Node is shutting down');
      return true;
    });
    await assert.rejects(new RingkvClient({ nodes: [leaving.url, refused] }).get('k'), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.status, undefined);
      assert.match(err.reason, /ECONNREFUSED/);
      return true;
    });
  });

  it('times out a node that does not answer, and stops at an abort', async () => {
    const hung = await standIn(() => {});
    const client = new RingkvClient({ nodes: hung.url, timeoutMs: 150 });
    const began = Date.now();
    await assert.rejects(client.get('k'), TimeoutError);
    const tookMs = Date.now() - began;
    assert.ok(tookMs >= 140 && tookMs < 2_000, `${tookMs} ms`);
    await assert.rejects(client.get('k', { timeoutMs: 30 }), (err) => isRingkvError(err, 'RINGKV_TIMEOUT'));

    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(client.put('k', 'v', { signal: controller.signal, timeoutMs: 5_000 }), {
      name: 'AbortError',
    });
    await assert.rejects(client.get('k', { signal: AbortSignal.abort(new Error('mine')) }), /mine/);
  });

  it('refuses bad node URLs and timeouts at construction', () => {
    for (const nodes of ['', 'ftp://host:1', 'http://host:1/path', 'not a url', [' ']]) {
      assert.throws(
        () => new RingkvClient({ nodes }),
        (err) => isRingkvError(err, 'RINGKV_CONFIG'),
      );
    }
    assert.throws(() => new RingkvClient({ nodes: 'http://h:1', timeoutMs: 0 }), /timeoutMs/);
    assert.deepEqual(new RingkvClient({ nodes: 'http://h:1/, http://h:2' }).nodes, [
      'http://h:1',
      'http://h:2',
    ]);
  });

  describe('scan', () => {
    it('streams the chunk format, values with newlines and empty values included', async () => {
      const entries = [
        ['a', 'one\ntwo'],
        ['b', ''],
        ['c', 'x'.repeat(100_000)],
      ] as const;
      const node = await standIn(rangeOf(entries));
      const client = new RingkvClient({ nodes: node.url });
      const got = await collect(client.scan('a', 'z', { encoding: 'utf8' }));
      assert.deepEqual(
        got.map((e: ScanEntry<string>) => [e.key, e.value]),
        entries.map(([k, v]) => [k, v]),
      );
      const raw = await collect(client.scan('', undefined, { scope: 'local' }));
      assert.ok(Buffer.isBuffer(raw[0]!.key));
      assert.deepEqual(node.seen, [
        'GET /v0/entities?start=a&end=z&scope=cluster',
        'GET /v0/entities?start=%00&scope=local',
      ]);
    });

    it('yields each entry as it arrives, before the answer ends', async () => {
      let finish = () => {};
      const node = await standIn((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write('a\n1');
        finish = () => {
          res.write('b\n2');
          res.end();
        };
      });
      const entries = new RingkvClient({ nodes: node.url }).scan('a', undefined, { encoding: 'utf8' });
      // The node writes the rest only once the first entry has reached the caller.
      assert.deepEqual((await entries.next()).value, { key: 'a', value: '1' });
      finish();
      assert.deepEqual((await entries.next()).value, { key: 'b', value: '2' });
      assert.equal((await entries.next()).done, true);
    });

    it('fails over before the first entry, and goes on from the next key when a range is cut short', async () => {
      const leaving = await standIn(answer(503, 'Node is shutting down', { connection: 'close' }));
      const cut = await standIn((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write('a\n1');
        res.write('b\n2', () => setTimeout(() => res.socket?.destroy(), 20));
      });
      const rest = await standIn(rangeOf([['c', '3']]));
      const client = new RingkvClient({ nodes: [leaving.url, cut.url, rest.url] });
      const got = await collect(client.scan('a', undefined, { encoding: 'utf8' }));
      assert.deepEqual(
        got.map((e) => `${e.key}=${e.value}`),
        ['a=1', 'b=2', 'c=3'],
      );
      assert.deepEqual(rest.seen, ['GET /v0/entities?start=b%00&scope=cluster']);
    });

    it('stops at an abort that comes after the node cut the range, without asking the next node', async () => {
      const cut = await standIn((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write('a\n1', () => setTimeout(() => res.socket?.destroy(), 10));
      });
      const rest = await standIn(rangeOf([['b', '2']]));
      const controller = new AbortController();
      const seen: string[] = [];
      const client = new RingkvClient({ nodes: [cut.url, rest.url] });
      await assert.rejects(
        async () => {
          for await (const entry of client.scan('a', undefined, {
            signal: controller.signal,
            encoding: 'utf8',
          })) {
            seen.push(entry.key);
            // The cut reaches the client before the abort: the abort has no connection to destroy.
            await new Promise((resolve) => setTimeout(resolve, 100));
            controller.abort();
          }
        },
        { name: 'AbortError' },
      );
      assert.deepEqual(seen, ['a']);
      assert.deepEqual(rest.seen, []);
    });

    it('yields nothing more after an abort, not even entries already read off the connection', async () => {
      const keys = Array.from({ length: 50 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      const chunks = keys.map((key) => `${(key.length + 2).toString(16)}\r\n${key}\nv\r\n`).join('');
      // Every entry in one write straight to the socket, so that one read holds them all; the answer stays open.
      const node = await standIn((_req, res) => {
        res.socket!.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n${chunks}`,
        );
      });
      const controller = new AbortController();
      const entries = new RingkvClient({ nodes: node.url }).scan('k', undefined, {
        signal: controller.signal,
        encoding: 'utf8',
      });
      assert.equal((await entries.next()).value?.key, 'k00');
      controller.abort();
      await assert.rejects(entries.next(), { name: 'AbortError' });
      assert.equal((await entries.next()).done, true);
    });

    it('gives typed errors: a bad parameter, no node, a stalled answer', async () => {
      const bad = await standIn(answer(400, 'Empty end'));
      await assert.rejects(collect(new RingkvClient({ nodes: bad.url }).scan('a', 'b')), BadRequestError);
      const refused = `http://127.0.0.1:${await freePort()}`;
      await assert.rejects(collect(new RingkvClient({ nodes: refused }).scan('a')), UnavailableError);
      const stalled = await standIn((_req, res) => {
        res.writeHead(200);
        res.write('a\n1');
      });
      const client = new RingkvClient({ nodes: stalled.url, timeoutMs: 100 });
      const seen: string[] = [];
      await assert.rejects(async () => {
        for await (const entry of client.scan('a', undefined, { encoding: 'utf8' })) seen.push(entry.key);
      }, TimeoutError);
      assert.deepEqual(seen, ['a']);
    });
  });
});
