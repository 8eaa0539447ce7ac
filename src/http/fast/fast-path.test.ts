/**
 * The fast path in-process, over raw sockets: pipelining, requests cut at
 * any byte, the handover to node:http, back-pressure, half-closed
 * connections, timeouts and shutdown; and a property test that it answers
 * random request scripts exactly as node:http alone does.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { type RawAnswer, RawConnection } from '../../../test/support/http-client.js';
import { propertyParams } from '../../../test/support/property.js';
import { HybridClock } from '../../cluster/clock.js';
import { LocalStore } from '../../cluster/local-store.js';
import type { Store } from '../../cluster/store.js';
import { MemoryEngine } from '../../storage/index.js';
import { RequestMetrics } from '../request-metrics.js';
import { RequestCounters, type RouteContext } from '../routes/context.js';
import { HttpServer } from '../server.js';
import { FastPath } from './fast-path.js';
import { parseRequestHead } from './request-head.js';

const VALUE_BYTES_MAX = 2 * 1024 * 1024;

function newStore(): Store {
  return new LocalStore(new MemoryEngine(), new HybridClock());
}

/** A store whose reads take `delayMs` (0: as fast as the store under it). */
class DelayedStore implements Store {
  readonly clusterSize = 1;
  delayMs = 0;
  readonly #store = newStore();

  async get(...args: Parameters<Store['get']>): ReturnType<Store['get']> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    return this.#store.get(...args);
  }
  put(...args: Parameters<Store['put']>): ReturnType<Store['put']> {
    return this.#store.put(...args);
  }
  delete(...args: Parameters<Store['delete']>): ReturnType<Store['delete']> {
    return this.#store.delete(...args);
  }
  scanLocal(...args: Parameters<Store['scanLocal']>): ReturnType<Store['scanLocal']> {
    return this.#store.scanLocal(...args);
  }
  status(): Record<string, unknown> {
    return {};
  }
  close(): Promise<void> {
    return this.#store.close();
  }
}

const servers: HttpServer[] = [];
const connections: RawConnection[] = [];

async function startServer(fastPath: boolean, store: Store = newStore()): Promise<HttpServer> {
  const server = new HttpServer({
    store,
    nodeUrl: 'http://127.0.0.1:1',
    cluster: ['http://127.0.0.1:1'],
    keyBytesMax: 64,
    valueBytesMax: VALUE_BYTES_MAX,
    log: () => undefined,
    fastPath,
  });
  await server.listen(0, '127.0.0.1');
  servers.push(server);
  return server;
}

async function open(port: number): Promise<RawConnection> {
  const conn = await RawConnection.open(port);
  connections.push(conn);
  return conn;
}

afterEach(async () => {
  for (const conn of connections.splice(0)) conn.close();
  await Promise.all(servers.splice(0).map((server) => server.close(500)));
});

function get(key: string, query = ''): string {
  return `GET /v0/entity?id=${key}${query} HTTP/1.1\r\nHost: x\r\n\r\n`;
}
function put(key: string, value: string, query = ''): string {
  return `PUT /v0/entity?id=${key}${query} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(value)}\r\n\r\n${value}`;
}
function del(key: string): string {
  return `DELETE /v0/entity?id=${key} HTTP/1.1\r\nHost: x\r\n\r\n`;
}

/** Writes `bytes` in pieces of `size`, each handed to the OS before the next. */
async function writeInPieces(conn: RawConnection, bytes: Buffer, size: number): Promise<void> {
  conn.socket.setNoDelay(true);
  for (let at = 0; at < bytes.length; at += size) {
    await conn.write(bytes.subarray(at, at + size));
    // A turn of the event loop, so that the server reads pieces one by one.
    await new Promise(setImmediate);
  }
}

async function readAnswers(conn: RawConnection, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(summary(await conn.readAnswer()));
  return out;
}

function summary(answer: RawAnswer): string {
  return `${answer.status} ${answer.body.toString('latin1')}`;
}

type ScriptRequest =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'delete'; key: string }
  | { kind: 'other'; text: string };

const SCRIPT = [
  put('a', 'one'),
  get('a'),
  put('b', 'hello world'),
  del('a'),
  get('a'),
  get('b'),
  get('b', '&ack=2'),
  put('c', ''),
  get('c'),
  get('%zz'),
].join('');
const SCRIPT_ANSWERS = [
  '201 ',
  '200 one',
  '201 ',
  '202 ',
  '404 Not found',
  '200 hello world',
  '400 Bad ack: larger than from',
  '201 ',
  '200 ',
  '400 Bad percent-encoding: % must be followed by two hex digits',
];

describe('fast path', () => {
  it('answers pipelined requests in order, however the bytes are cut', async () => {
    const server = await startServer(true);
    for (const size of [SCRIPT.length, 1, 2, 7, 64]) {
      const conn = await open(server.port());
      await writeInPieces(conn, Buffer.from(SCRIPT), size);
      assert.deepEqual(await readAnswers(conn, SCRIPT_ANSWERS.length), SCRIPT_ANSWERS, `pieces of ${size}`);
      conn.close();
    }
    const counters = server.counters.toJSON();
    assert.equal(counters.fastPath, 5 * SCRIPT_ANSWERS.length);
    assert.equal(counters.fastPathHandovers, 0);
  });

  it('sends the headers node:http sends', async () => {
    const server = await startServer(true);
    const conn = await open(server.port());
    await conn.write(put('h', 'v') + get('h'));
    const stored = await conn.readAnswer();
    assert.equal(stored.status, 201);
    assert.equal(stored.headers['content-length'], '0');
    assert.equal(stored.headers['content-type'], undefined);
    const read = await conn.readAnswer();
    assert.equal(read.headers['content-type'], 'application/octet-stream');
    assert.equal(read.headers.connection, 'keep-alive');
    assert.match(read.headers['keep-alive']!, /^timeout=\d+$/);
    assert.ok(Math.abs(Date.parse(read.headers.date!) - Date.now()) < 5000, read.headers.date);
  });

  it('hands a connection to node:http at its first other request, for good', async () => {
    const server = await startServer(true);
    const conn = await open(server.port());
    await conn.write(
      put('k', 'v') +
        'GET /v0/status HTTP/1.1\r\nHost: x\r\n\r\n' +
        get('k') +
        'POST /v0/entity?id=k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz' +
        get('k'),
    );
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await conn.readAnswer());
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 200, 200, 405, 200],
    );
    assert.equal(answers[2]!.body.toString(), 'v');
    const counters = server.counters.toJSON();
    assert.equal(counters.fastPath, 1);
    assert.equal(counters.fastPathHandovers, 1);
  });

  it('leaves Expect, chunked bodies, values over the limit, HTTP/1.0 and Connection: close to node:http', async () => {
    const server = await startServer(true);
    const port = server.port();

    const expecting = await open(port);
    await expecting.write(
      'PUT /v0/entity?id=e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
    );
    assert.equal((await expecting.readAnswer()).status, 100);
    await expecting.write('ok');
    assert.equal((await expecting.readAnswer()).status, 201);

    const chunked = await open(port);
    await chunked.write(
      'PUT /v0/entity?id=c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    );
    assert.equal((await chunked.readAnswer()).status, 201);
    await chunked.write(get('c'));
    assert.equal(summary(await chunked.readAnswer()), '200 abc');
    // Pipelined on the handed-over connection: node:http's requests too run one at a time, in order.
    await chunked.write(
      'PUT /v0/entity?id=c2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n' +
        get('c2') +
        del('c2') +
        get('c2'),
    );
    assert.deepEqual(await readAnswers(chunked, 4), ['201 ', '200 hi', '202 ', '404 Not found']);

    const large = await open(port);
    await large.write(
      `PUT /v0/entity?id=l HTTP/1.1\r\nHost: x\r\nContent-Length: ${VALUE_BYTES_MAX + 1}\r\n\r\n`,
    );
    assert.equal((await large.readAnswer()).status, 413);

    const old = await open(port);
    await old.write('GET /v0/entity?id=e HTTP/1.0\r\n\r\n');
    assert.equal(summary(await old.readAnswer()), '200 ok');
    assert.ok(await old.waitClosed(2000));

    const closing = await open(port);
    await closing.write('GET /v0/entity?id=e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const answer = await closing.readAnswer();
    assert.equal(answer.headers.connection, 'close');
    assert.ok(await closing.waitClosed(2000));

    const bad = await open(port);
    await bad.write('GET /v0/entity?id=e HTTP/1.1\nHost: x\n\n');
    assert.equal((await bad.readAnswer()).status, 400);
    assert.equal(server.counters.toJSON().fastPathHandovers, 6);
  });

  it('answers what a client sent before ending its side, then closes', async () => {
    const server = await startServer(true);
    const conn = await open(server.port());
    conn.socket.end(put('x', '1') + get('x'));
    assert.deepEqual(await readAnswers(conn, 2), ['201 ', '200 1']);
    assert.ok(await conn.waitClosed(2000));
  });

  it('holds back a client that pipelines without reading its answers', async () => {
    const server = await startServer(true);
    const value = 'v'.repeat(1024 * 1024);
    const setup = await open(server.port());
    await setup.write(put('big', value));
    assert.equal((await setup.readAnswer()).status, 201);
    const before = server.counters.get;

    // A socket with no reader: its receive buffer fills, then the server's send buffer.
    const requests = 300;
    const socket: Socket = connect({ port: server.port(), host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(get('big').repeat(requests));
    await sleep(500);
    const answeredWhileBlocked = server.counters.get - before;
    assert.ok(answeredWhileBlocked < requests / 2, `answered ${answeredWhileBlocked} of ${requests} unread`);

    // Reading now lets every request be answered, in full and in order.
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    const deadline = Date.now() + 20_000;
    while (server.counters.get - before < requests && Date.now() < deadline) await sleep(20);
    assert.equal(server.counters.get - before, requests);
    while (received < requests * value.length && Date.now() < deadline) await sleep(20);
    assert.ok(received > requests * value.length, `received ${received}`);
    socket.destroy();
  });

  it('closes idle connections at shutdown, and answers the one in flight with connection: close', async () => {
    const store = new DelayedStore();
    const server = await startServer(true, store);
    const idle = await open(server.port());
    await idle.write(put('s', 'v'));
    assert.equal((await idle.readAnswer()).status, 201);
    store.delayMs = 300;
    const busy = await open(server.port());
    await busy.write(get('s'));
    await sleep(50);
    const closed = server.close(2000);
    assert.ok(await idle.waitClosed(1000));
    const answer = await busy.readAnswer();
    assert.equal(summary(answer), '200 v');
    assert.equal(answer.headers.connection, 'close');
    assert.ok(await busy.waitClosed(1000));
    await closed;
  });

  it('reads the requests after a PUT body that ended inside a later read', async () => {
    const server = await startServer(true);
    const conn = await open(server.port());
    conn.socket.setNoDelay(true);
    await conn.write(`${get('a')}PUT /v0/entity?id=b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab`);
    assert.equal((await conn.readAnswer()).status, 404);
    await sleep(20);
    await conn.write(`cde${get('b')}${get('c')}${put('c', 'x')}${get('c')}`);
    assert.deepEqual(await readAnswers(conn, 5), ['201 ', '200 abcde', '404 Not found', '201 ', '200 x']);
  });

  it('reads a large PUT pipelined behind a slow answer', async () => {
    const store = new DelayedStore();
    const server = await startServer(true, store);
    const conn = await open(server.port());
    store.delayMs = 300;
    const value = 'w'.repeat(200 * 1024);
    await conn.write(get('slow') + put('large', value));
    assert.deepEqual(await readAnswers(conn, 2), ['404 Not found', '201 ']);
    store.delayMs = 0;
    await conn.write(get('large'));
    assert.equal((await conn.readAnswer()).body.length, value.length);
  });

  it('sends the answers already given before closing a half-closed connection it cannot hand over', async () => {
    const store = new DelayedStore();
    const server = await startServer(true, store);
    const conn = await open(server.port());
    await conn.write(put('h', 'v'));
    assert.equal((await conn.readAnswer()).status, 201);
    store.delayMs = 100;
    // The client ends its side while the GET is being answered; /v0/status would need node:http.
    conn.socket.end(`${get('h')}GET /v0/status HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(summary(await conn.readAnswer()), '200 v');
    assert.ok(await conn.waitClosed(2000));
  });

  it('lets a request whose head is arriving at shutdown finish, with connection: close', async () => {
    const server = await startServer(true);
    const conn = await open(server.port());
    const text = get('z');
    await conn.write(text.slice(0, 20));
    await sleep(50);
    const closed = server.close(2000);
    await sleep(150);
    await conn.write(text.slice(20));
    const answer = await conn.readAnswer();
    assert.equal(answer.status, 404);
    assert.equal(answer.headers.connection, 'close');
    assert.ok(await conn.waitClosed(1000));
    await closed;
  });

  it('takes no head that node:http would refuse (property)', async () => {
    const plain = await startServer(false);
    const host = fc.constantFrom('Host: x', 'host:\tx', 'HOST: x ');
    const line: fc.Arbitrary<string> = fc.constantFrom(
      'Accept: */*',
      'X-A: a\tb',
      'X-B: \xe9t\xe9',
      'X-C:',
      'X-D:   ',
      'X-E: a\x7f',
      'X-F: a\x01',
      'Connection: keep-alive',
      'connection: KEEP-ALIVE',
      'Connection:  keep-alive\t',
      'Content-Length: 0',
      'Content-Length:  0 ',
      'Content-Length: 00',
      "X!#$%&'*+-.^_`|~: v",
      'X-G: "quoted", a;b=c',
      'X-H: \t',
      'Keep-Alive: timeout=5',
      // node:http answers two Host headers 400: never to be taken.
      'Host: y',
    );
    let taken = 0;
    await fc.assert(
      fc.asyncProperty(host, fc.array(line, { maxLength: 6 }), fc.nat(6), async (hostLine, lines, at) => {
        // A copy: fast-check shrinks the generated array, which must stay as it made it.
        const all = [...lines];
        all.splice(Math.min(at, all.length), 0, hostLine);
        const text = `GET /v0/entity?id=absent HTTP/1.1\r\n${all.map((l) => `${l}\r\n`).join('')}\r\n`;
        const bytes = Buffer.from(text, 'latin1');
        if (typeof parseRequestHead(bytes, 0, 16 * 1024) !== 'object') return;
        taken++;
        const conn = await open(plain.port());
        await conn.write(bytes);
        assert.equal((await conn.readAnswer()).status, 404, JSON.stringify(text));
        conn.close();
      }),
      propertyParams({ numRuns: 150 }),
    );
    assert.ok(taken > 40, `only ${taken} of 150 heads taken`);
  });

  it('answers random request scripts exactly as node:http does, one at a time and pipelined (property)', async () => {
    const request: fc.Arbitrary<ScriptRequest> = fc.oneof(
      fc.record({
        kind: fc.constant('put' as const),
        key: fc.constantFrom('a', 'b', '%61', '%zz'),
        value: fc.string({ maxLength: 40 }),
      }),
      fc.record({ kind: fc.constant('get' as const), key: fc.constantFrom('a', 'b', '', 'a&ack=2') }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom('a', 'b') }),
      fc.record({
        kind: fc.constant('other' as const),
        text: fc.constantFrom(
          'POST /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
          'PUT /v0/entity?id=b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
          'PUT /v0/entity?id=a&ttl=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz',
          'GET /v0/nothing HTTP/1.1\r\nHost: x\r\n\r\n',
          'GET /v0/entity?id=a HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\nAccept: */*\r\n\r\n',
        ),
      }),
    );
    const render = (r: ScriptRequest): string =>
      r.kind === 'put'
        ? put(r.key, r.value)
        : r.kind === 'get'
          ? get(r.key)
          : r.kind === 'delete'
            ? del(r.key)
            : r.text;
    const fast = await startServer(true);
    const plain = await startServer(false);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(request, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 40 }),
        async (script, pieceSize) => {
          // Keys of their own per run, so that runs do not see each other's writes.
          run++;
          const keyed = (text: string) =>
            text.replaceAll('id=a', `id=a${run}`).replaceAll('id=b', `id=b${run}`);
          const answers: string[][] = [];
          for (const server of [fast, plain]) {
            const conn = await open(server.port());
            const got: string[] = [];
            for (const request of script) {
              await writeInPieces(conn, Buffer.from(keyed(render(request))), pieceSize);
              got.push(summary(await conn.readAnswer()));
            }
            answers.push(got);
            conn.close();
          }
          assert.deepEqual(answers[0], answers[1]);
          // The whole script at once, on fresh keys: the same answers, in the same order.
          run++;
          for (const server of [fast, plain]) {
            const conn = await open(server.port());
            await writeInPieces(conn, Buffer.from(keyed(script.map(render).join(''))), pieceSize);
            assert.deepEqual(await readAnswers(conn, script.length), answers[0]);
            conn.close();
          }
        },
      ),
      propertyParams({ numRuns: 40 }),
    );
    assert.ok((fast.counters.toJSON().fastPath as number) > 40);
    assert.equal(plain.counters.toJSON().fastPath, 0);
  });
});

describe('fast path timeouts', () => {
  let http: Server | undefined;
  let fastPath: FastPath | undefined;

  async function startBare(): Promise<{ port: number; ctx: RouteContext }> {
    const ctx: RouteContext = {
      store: newStore(),
      paramLimits: { keyBytesMax: 64, clusterSize: 1 },
      valueBytesMax: 8 * 1024 * 1024,
      counters: new RequestCounters(),
      requestMetrics: new RequestMetrics(),
      nodeUrl: 'http://127.0.0.1:1',
      cluster: ['http://127.0.0.1:1'],
      startedAtMs: Date.now(),
      wallMs: Date.now,
      log: () => undefined,
      leaving: false,
      closing: false,
      clusterScansMax: 64,
    };
    http = createServer((_req, res) => res.writeHead(418).end());
    fastPath = FastPath.install(http, ctx, {
      headBytesMax: 16 * 1024,
      timeouts: { keepAliveMs: 200, headersMs: 300, requestMs: 600, socketIdleMs: 400 },
    });
    assert.ok(fastPath !== undefined);
    await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
    const address = http.address();
    assert.ok(address !== null && typeof address === 'object');
    return { port: address.port, ctx };
  }

  afterEach(async () => {
    fastPath?.destroyAll();
    fastPath?.stop();
    await new Promise((resolve) => http?.close(resolve));
  });

  it('closes a keep-alive connection left idle', async () => {
    const { port } = await startBare();
    const conn = await open(port);
    await conn.write(get('a'));
    assert.equal((await conn.readAnswer()).status, 404);
    assert.equal(await conn.waitClosed(100), false);
    assert.ok(await conn.waitClosed(2500));
  });

  it('answers 408 to a head that drips in too slowly, however often bytes arrive', async () => {
    const { port } = await startBare();
    const conn = await open(port);
    const text = get('a');
    const started = Date.now();
    let sent = 0;
    // One byte every 50 ms would take over 2 s; the head's 300 ms are up long before.
    while (!conn.ended && sent < text.length - 1 && Date.now() - started < 4000) {
      await conn.write(text[sent++]!).catch(() => undefined);
      await sleep(50);
    }
    assert.equal((await conn.readAnswer()).status, 408);
    assert.ok(await conn.waitClosed(1000));
    assert.ok(sent < text.length - 1, `sent ${sent} bytes`);
  });

  it('answers 408 to a body that does not arrive in time', async () => {
    const { port } = await startBare();
    const conn = await open(port);
    await conn.write('PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    assert.equal((await conn.readAnswer(4000)).status, 408);
    assert.ok(await conn.waitClosed(1000));
  });

  it('cuts a closing connection whose client never reads its last answer', async () => {
    const { port } = await startBare();
    const setup = await open(port);
    await setup.write(put('big', 'v'.repeat(4 * 1024 * 1024)));
    assert.equal((await setup.readAnswer()).status, 201);
    setup.close();
    // No reader: the 4 MiB answer cannot all be written, and the client has ended its side.
    const socket = connect({ port, host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => undefined);
    socket.end(get('big'));
    await sleep(100);
    assert.equal(fastPath!.connectionCount, 1);
    const deadline = Date.now() + 4000;
    while (fastPath!.connectionCount > 0 && Date.now() < deadline) await sleep(50);
    assert.equal(fastPath!.connectionCount, 0);
    socket.destroy();
  });

  it('passes handed-over connections to the server it was installed on', async () => {
    const { port } = await startBare();
    const conn = await open(port);
    await conn.write(`${get('a')}GET /v0/status HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.deepEqual([(await conn.readAnswer()).status, (await conn.readAnswer()).status], [404, 418]);
  });
});
