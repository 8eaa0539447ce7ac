/**
 * The HTTP server in-process over a scripted Store: statuses the single-node
 * e2e tests cannot reach (504, 500, 503), the cluster hooks, readiness,
 * leaving and shutdown. What both request paths must do alike runs on each:
 * with the fast path in front of node:http, and node:http alone.
 */
import assert from 'node:assert/strict';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { RawConnection } from '../../test/support/http-client.js';
import type { PutOptions, ReplicaOptions, Store } from '../cluster/store.js';
import { limits } from '../config/limits.js';
import type { Entry, EntryCursor, ScanRange } from '../storage/index.js';
import { valueEntry } from '../storage/index.js';
import { CorruptionError, RingkvError } from '../util/errors.js';
import { PrometheusText } from '../util/prometheus-text.js';
import { RequestOp } from './request-metrics.js';
import type { Readiness } from './routes/health.js';
import { HttpServer, type HttpServerOptions } from './server.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(port: number, path: string, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A Store whose answers each test scripts. */
class ScriptedStore implements Store {
  readonly clusterSize: number;
  onGet: (key: Buffer, options: ReplicaOptions) => Promise<Entry | undefined> = async () => undefined;
  onPut: (key: Buffer, value: Buffer, options: PutOptions) => Promise<void> = async () => {};
  calls: string[] = [];

  constructor(clusterSize: number) {
    this.clusterSize = clusterSize;
  }

  get(key: Buffer, options: ReplicaOptions): Promise<Entry | undefined> {
    this.calls.push(`get ${key} ack=${options.ack} from=${options.from}`);
    return this.onGet(key, options);
  }
  put(key: Buffer, value: Buffer, options: PutOptions): Promise<void> {
    this.calls.push(`put ${key}=${value} ack=${options.ack} from=${options.from} ttl=${options.ttlMs}`);
    return this.onPut(key, value, options);
  }
  async delete(key: Buffer, options: ReplicaOptions): Promise<void> {
    this.calls.push(`delete ${key} ack=${options.ack} from=${options.from}`);
  }
  scanLocal(_range: ScanRange): EntryCursor {
    throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
  }
  status(): Record<string, unknown> {
    return { kind: 'scripted' };
  }
  async close(): Promise<void> {}
}

describe('HttpServer', () => {
  let server: HttpServer | undefined;
  let logged: string[] = [];

  async function start(store: Store, extra: Partial<HttpServerOptions> = {}): Promise<number> {
    logged = [];
    server = new HttpServer({
      store,
      nodeUrl: 'http://127.0.0.1:1',
      cluster: ['http://127.0.0.1:1'],
      keyBytesMax: 64,
      valueBytesMax: 1024,
      log: (line) => logged.push(line),
      ...extra,
    });
    await server.listen(0, '127.0.0.1');
    return server.port();
  }

  afterEach(async () => {
    await server?.close(1000);
    server = undefined;
  });

  it('passes the quorum defaults and explicit ack/from/ttl of a larger cluster to the store', async () => {
    const store = new ScriptedStore(5);
    const port = await start(store);
    assert.equal((await call(port, '/v0/entity?id=a', 'PUT', 'v')).status, 201);
    assert.equal((await call(port, '/v0/entity?id=a&ack=1&from=2&ttl=50', 'PUT', 'w')).status, 201);
    assert.equal((await call(port, '/v0/entity?id=a&from=4')).status, 404);
    assert.equal((await call(port, '/v0/entity?id=a&ack=5', 'DELETE')).status, 202);
    assert.equal((await call(port, '/v0/entity?id=a&from=6')).status, 400);
    assert.deepEqual(store.calls, [
      'put a=v ack=3 from=5 ttl=undefined',
      'put a=w ack=1 from=2 ttl=50',
      'get a ack=3 from=4',
      'delete a ack=5 from=5',
    ]);
  });

  it('answers 504 when not enough replicas answer', async () => {
    const store = new ScriptedStore(3);
    store.onGet = async () => {
      throw new RingkvError('RINGKV_NOT_ENOUGH_REPLICAS', 'Not enough replicas: 1 of 2 answered');
    };
    store.onPut = store.onGet as unknown as typeof store.onPut;
    const port = await start(store);
    const read = await call(port, '/v0/entity?id=a');
    assert.equal(read.status, 504);
    assert.equal(read.body, 'Not enough replicas: 1 of 2 answered');
    assert.equal((await call(port, '/v0/entity?id=a', 'PUT', 'v')).status, 504);
    assert.deepEqual(logged, []);
  });

  it('answers 500 without detail to an unexpected error, and logs one line', async () => {
    const store = new ScriptedStore(1);
    store.onGet = async () => {
      throw new TypeError('secret internals');
    };
    const port = await start(store);
    const answer = await call(port, '/v0/entity?id=a');
    assert.equal(answer.status, 500);
    assert.equal(answer.body, 'Internal error');
    assert.deepEqual(logged, ['Unexpected error: secret internals']);
  });

  it('answers 503 when the store is closed', async () => {
    const port = await start(new ScriptedStore(1));
    assert.equal((await call(port, '/v0/entities?start=a')).status, 503);
  });

  it('reads tombstones and expired entries as 404', async () => {
    const store = new ScriptedStore(1);
    let entry: Entry | undefined = valueEntry(Buffer.from('a'), 1n, Buffer.from('v'), Date.now() - 1);
    store.onGet = async () => entry;
    const port = await start(store);
    assert.equal((await call(port, '/v0/entity?id=a')).status, 404);
    entry = valueEntry(Buffer.from('a'), 1n, Buffer.from('v'), Date.now() + 60_000);
    const live = await call(port, '/v0/entity?id=a');
    assert.equal(live.status, 200);
    assert.equal(live.body, 'v');
  });

  it('routes /v0/internode to its hook, and answers 400 there without one', async () => {
    const port = await start(new ScriptedStore(1), {
      internode: (req, res) => {
        res.writeHead(299);
        res.end(`internode ${req.url}`);
      },
    });
    const answer = await call(port, '/v0/internode/ping');
    assert.equal(answer.status, 299);
    assert.equal(answer.body, 'internode /v0/internode/ping');
    await server!.close(1000);
    const plain = await start(new ScriptedStore(1));
    assert.equal((await call(plain, '/v0/internode/ping')).status, 400);
  });

  it('hands HTTP Upgrade requests to the upgrade hook', async () => {
    const port = await start(new ScriptedStore(1), {
      upgrade: (_req, socket) => {
        socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: ringkv\r\nconnection: upgrade\r\n\r\nhello');
      },
    });
    const received = await new Promise<string>((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' }, () => {
        socket.write(
          'GET /v0/internode HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ringkv\r\n\r\n',
        );
      });
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(received, /^HTTP\/1\.1 101 /);
    assert.match(received, /hello$/);
  });

  it('close() lets a request in flight finish and then stops', async () => {
    const store = new ScriptedStore(1);
    let release: () => void = () => {};
    store.onPut = () =>
      new Promise<void>((resolve) => {
        release = resolve;
      });
    const port = await start(store);
    const put = call(port, '/v0/entity?id=slow', 'PUT', 'v');
    for (let i = 0; i < 100 && store.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const closed = server!.close(5000);
    release();
    const answer = await put;
    assert.equal(answer.status, 201);
    assert.equal(answer.headers.connection, 'close');
    await closed;
    await assert.rejects(call(port, '/v0/status'));
    server = undefined;
  });
});

/** Waits (bounded) until `done()` holds. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(done(), `timed out waiting for ${what}`);
}

const LEAVING_BODY = 'Node is shutting down';

for (const fastPath of [true, false])
  describe(`HttpServer, ${fastPath ? 'fast path in front' : 'node:http alone'}`, () => {
    let server: HttpServer | undefined;
    let logged: string[] = [];
    const connections: RawConnection[] = [];

    async function start(store: Store, extra: Partial<HttpServerOptions> = {}): Promise<number> {
      logged = [];
      server = new HttpServer({
        store,
        nodeUrl: 'http://127.0.0.1:1',
        cluster: ['http://127.0.0.1:1'],
        keyBytesMax: 64,
        valueBytesMax: 2 * 1024 * 1024,
        log: (line) => logged.push(line),
        fastPath,
        ...extra,
      });
      await server.listen(0, '127.0.0.1');
      assert.equal(server.fastPath, fastPath);
      return server.port();
    }

    /** A raw keep-alive connection; with the fast path in front, it starts there. */
    async function open(port: number): Promise<{ conn: RawConnection; errors: Error[] }> {
      const conn = await RawConnection.open(port);
      connections.push(conn);
      const errors: Error[] = [];
      conn.socket.on('error', (err) => errors.push(err));
      return { conn, errors };
    }

    /** Requests answered with `status`, whatever their operation (/metrics). */
    function answered(status: number): number {
      return Object.values(RequestOp).reduce<number>(
        (sum, op) => sum + server!.requestMetrics.count(op, status),
        0,
      );
    }

    async function requestCounters(port: number): Promise<Record<string, unknown>> {
      const answer = await call(port, '/v0/status');
      // 503 while the node starts or leaves: the JSON is there all the same.
      assert.ok(answer.status === 200 || answer.status === 503, String(answer.status));
      return (JSON.parse(answer.body) as { requests: Record<string, unknown> }).requests;
    }

    afterEach(async () => {
      for (const conn of connections.splice(0)) conn.close();
      await server?.close(1000);
      server = undefined;
    });

    describe('/v0/health', () => {
      it('answers 200 {"status":"ok"} as JSON, on a connection the fast path had', async () => {
        const port = await start(new ScriptedStore(1));
        const { conn } = await open(port);
        await conn.write(
          'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\nGET /v0/health HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        assert.equal((await conn.readAnswer()).status, 404);
        const health = await conn.readAnswer();
        assert.equal(health.status, 200);
        assert.equal(health.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(health.body.toString()), { status: 'ok' });
        assert.notEqual(health.headers.connection, 'close');
        const counters = await requestCounters(port);
        assert.equal(counters.health, 1);
        assert.equal(counters.fastPath, fastPath ? 1 : 0);
      });

      it('answers ready=1 (and /v0/status) with 503 "starting" until the node is ready, then 200 "ready"', async () => {
        let readiness: Readiness = 'starting';
        const port = await start(new ScriptedStore(1), { readiness: () => readiness });
        const starting = await call(port, '/v0/health?ready=1');
        assert.equal(starting.status, 503);
        assert.equal(starting.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(starting.body), { status: 'starting' });
        // Alive all the same; /v0/status answers its JSON with 503 until ready.
        assert.equal((await call(port, '/v0/health')).status, 200);
        const startingStatus = await call(port, '/v0/status');
        assert.equal(startingStatus.status, 503);
        assert.equal(JSON.parse(startingStatus.body).ready, false);
        readiness = 'ready';
        const ready = await call(port, '/v0/health?ready=1');
        assert.equal(ready.status, 200);
        assert.deepEqual(JSON.parse(ready.body), { status: 'ready' });
        const readyStatus = await call(port, '/v0/status');
        assert.equal(readyStatus.status, 200);
        assert.equal(JSON.parse(readyStatus.body).ready, true);
        assert.equal((await requestCounters(port)).health, 3);
      });

      it('is ready by default', async () => {
        const port = await start(new ScriptedStore(1));
        const ready = await call(port, '/v0/health?ready=1');
        assert.equal(ready.status, 200);
        assert.equal(ready.body, '{"status":"ready"}');
      });

      it('answers 400 with a reason to other values of ready, and 405 to other methods', async () => {
        const port = await start(new ScriptedStore(1));
        for (const query of ['ready=2', 'ready=yes', 'ready=', 'ready', 'ready=true', 'ready=01']) {
          const answer = await call(port, `/v0/health?${query}`);
          assert.equal(answer.status, 400, query);
          assert.equal(answer.body, 'Bad ready: expected 1', query);
        }
        for (const method of ['POST', 'PUT', 'DELETE']) {
          const answer = await call(port, '/v0/health', method);
          assert.equal(answer.status, 405, method);
          assert.equal(answer.headers.allow, 'GET');
        }
      });
    });

    describe('/metrics', () => {
      it('counts and times every answered request by operation and status, and serves the hook as Prometheus text', async () => {
        const port = await start(new ScriptedStore(1), {
          metrics: async () => {
            const out = new PrometheusText();
            server!.requestMetrics.write(out);
            return out.toString();
          },
        });
        const { conn } = await open(port);
        await conn.write(
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv' +
            'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n' +
            'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n' +
            'DELETE /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n' +
            'GET /v0/health HTTP/1.1\r\nHost: x\r\n\r\n' +
            'GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        for (const status of [201, 404, 404, 202, 200, 400])
          assert.equal((await conn.readAnswer()).status, status);
        const metrics = server!.requestMetrics;
        assert.equal(metrics.count(RequestOp.Put, 201), 1);
        assert.equal(metrics.count(RequestOp.Get, 404), 2);
        assert.equal(metrics.count(RequestOp.Delete, 202), 1);
        assert.equal(metrics.count(RequestOp.Health, 200), 1);
        assert.equal(metrics.count(RequestOp.Other, 400), 1);
        await conn.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
        const scrape = await conn.readAnswer();
        assert.equal(scrape.status, 200);
        assert.equal(scrape.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
        const body = scrape.body.toString();
        assert.match(body, /^ringkv_http_requests_total\{op="get",code="404"\} 2$/m);
        assert.match(body, /^ringkv_http_request_duration_seconds_count\{op="put",code="201"\} 1$/m);
        assert.match(
          body,
          /^ringkv_http_request_duration_seconds_bucket\{op="delete",code="202",le="\+Inf"\} 1$/m,
        );
        // The scrape is counted once answered.
        assert.equal(metrics.count(RequestOp.Metrics, 200), 1);
        assert.equal((await requestCounters(port)).metrics, 1);
        assert.equal((await call(port, '/metrics', 'POST')).status, 405);
      });

      it('is an unknown path (400) without a metrics hook', async () => {
        const port = await start(new ScriptedStore(1));
        assert.equal((await call(port, '/metrics')).status, 400);
      });

      it('counts upgrades: refused ones as other, a handshake by the status the hook answered', async () => {
        const statuses = [101, 403];
        const port = await start(new ScriptedStore(1), {
          upgrade: (_req, socket) => {
            const status = statuses.shift()!;
            socket.end(`HTTP/1.1 ${status} X\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
            return status;
          },
        });
        const upgrade = 'connection: upgrade\r\nupgrade: ringkv\r\n\r\n';
        for (const [head, status] of [
          [`GET /v0/internode HTTP/1.1\r\nhost: x\r\n${upgrade}`, 101],
          [`GET /v0/internode HTTP/1.1\r\nhost: x\r\n${upgrade}`, 403],
          [`GET /v0/internode HTTP/1.1\r\nhost: x\r\nhost: y\r\n${upgrade}`, 400],
        ] as const) {
          const { conn } = await open(port);
          await conn.write(head);
          assert.equal((await conn.readAnswer()).status, status);
        }
        const metrics = server!.requestMetrics;
        assert.equal(metrics.count(RequestOp.Internode, 101), 1);
        assert.equal(metrics.count(RequestOp.Other, 403), 1);
        assert.equal(metrics.count(RequestOp.Other, 400), 1);
        const counters = await requestCounters(port);
        assert.equal(counters.internode, 1);
        const responses = counters.responses as Record<string, number>;
        assert.deepEqual([responses['101'], responses['403'], responses['400']], [1, 1, 1]);
      });

      it('counts dashboard pages as dashboard in /v0/status, not as status requests', async () => {
        const port = await start(new ScriptedStore(1));
        for (const path of ['/', '/ui']) assert.equal((await call(port, path)).status, 200);
        const counters = await requestCounters(port);
        // The status request that read them is the only one.
        assert.equal(counters.status, 1);
        assert.equal(counters.dashboard, 2);
        assert.equal(server!.requestMetrics.count(RequestOp.Dashboard, 200), 2);
      });

      it('counts an upgrade refused for want of a hook as other', async () => {
        const port = await start(new ScriptedStore(1));
        const { conn } = await open(port);
        await conn.write(
          'GET /v0/status HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
        );
        const answer = await conn.readAnswer();
        assert.equal(answer.status, 400);
        assert.equal(answer.body.toString(), 'Upgrade not supported');
        assert.equal(server!.requestMetrics.count(RequestOp.Other, 400), 1);
      });
    });

    describe('a socket handed to the upgrade or CONNECT listeners and refused', () => {
      /** A client that sends `head`, reads the refusal (`status`) and the server's FIN, and keeps its own side open. */
      async function refusedHalfOpen(port: number, head: string, status: number): Promise<Socket> {
        const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        socket.on('error', () => {});
        let answer = '';
        socket.on('data', (chunk: Buffer) => {
          answer += chunk.toString('latin1');
        });
        const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
        socket.write(head);
        await ended;
        assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), head);
        return socket;
      }

      /** The server's open connections, polled every 5 ms for up to 1.5 s until there are none. */
      async function connectionsOnceClosed(): Promise<number> {
        let open = 1;
        for (let i = 0; i < 300 && open > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          open = await new Promise<number>((resolve, reject) =>
            server!.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
          );
        }
        return open;
      }

      it('is closed once idle for the socket timeout when its client never ends its side', async () => {
        const port = await start(new ScriptedStore(1), {
          socketIdleTimeoutMs: 200,
          upgrade: (_req, socket) => {
            socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
            return 403;
          },
        });
        const upgrade = 'connection: upgrade\r\nupgrade: ringkv\r\n\r\n';
        for (const [head, status] of [
          [`GET /v0/internode HTTP/1.1\r\nhost: x\r\n${upgrade}`, 403],
          [`GET /v0/internode HTTP/1.1\r\nhost: x\r\nhost: y\r\n${upgrade}`, 400],
          ['CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n', 400],
        ] as const) {
          // It reads the answer and the server's FIN, and keeps its own side open.
          const socket = await refusedHalfOpen(port, head, status);
          // The server's close sends nothing after its FIN: watched from the server's side.
          const open = await connectionsOnceClosed();
          socket.destroy();
          assert.equal(open, 0, `still open 1.5 s after a refused ${head.split(' ', 1)[0]}`);
        }
      });

      it('survives a client that resets the connection after reading the refusal', async () => {
        // Without an 'error' listener on the handed socket, the reset is an uncaught ECONNRESET.
        const upgrade = 'connection: upgrade\r\nupgrade: ringkv\r\n\r\n';
        for (const [hook, head, status] of [
          [true, `GET /v0/internode HTTP/1.1\r\nhost: x\r\n${upgrade}`, 403],
          [true, `GET /v0/internode HTTP/1.1\r\nhost: x\r\nhost: y\r\n${upgrade}`, 400],
          [false, `GET /v0/internode HTTP/1.1\r\nhost: x\r\n${upgrade}`, 400],
          [true, 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n', 400],
        ] as const) {
          const port = await start(
            new ScriptedStore(1),
            // A hook that refuses as the internode server does while leaving: it ends the socket, adds no listener.
            hook
              ? {
                  upgrade: (_req, socket) => {
                    socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
                    return 403;
                  },
                }
              : {},
          );
          const socket = await refusedHalfOpen(port, head, status);
          // A reset (RST), not a FIN: the server's side, still reading, gets ECONNRESET.
          socket.resetAndDestroy();
          const open = await connectionsOnceClosed();
          assert.equal(open, 0, `the reset connection still open after a refused ${head.split(' ', 1)[0]}`);
          assert.equal((await call(port, '/v0/health')).status, 200);
          await server!.close(100);
          server = undefined;
        }
      });
    });

    describe('leaving', () => {
      it('answers new client requests 503 and closes their connection, while in-flight ones finish', async () => {
        const store = new ScriptedStore(1);
        let release: () => void = () => {};
        store.onPut = () =>
          new Promise<void>((resolve) => {
            release = resolve;
          });
        const port = await start(store);
        const { conn: busy } = await open(port);
        await busy.write('PUT /v0/entity?id=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv');
        await until(() => store.calls.length === 1, 'the PUT to reach the store');
        const { conn: idle } = await open(port);
        await idle.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal((await idle.readAnswer()).status, 404);

        assert.equal(server!.leaving, false);
        server!.beginLeaving();
        assert.equal(server!.leaving, true);
        release();
        const finished = await busy.readAnswer();
        assert.equal(finished.status, 201);
        // Answered in full, and told to close: its next request would only be refused.
        assert.equal(finished.headers.connection, 'close');
        assert.ok(await busy.waitClosed(2000));

        // The next request on an open connection, and on a new one, is refused.
        for (const conn of [idle, (await open(port)).conn]) {
          await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
          const refused = await conn.readAnswer();
          assert.equal(refused.status, 503);
          assert.equal(refused.body.toString(), LEAVING_BODY);
          assert.match(refused.headers['content-type']!, /^text\/plain/);
          assert.equal(refused.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
        }
        for (const [path, method] of [
          ['/v0/entity?id=b', 'PUT'],
          ['/v0/entity?id=b', 'DELETE'],
          ['/v0/entities?start=a', 'GET'],
          ['/v0/nothing', 'GET'],
        ] as const) {
          const answer = await call(port, path, method, method === 'PUT' ? 'v' : undefined);
          assert.equal(answer.status, 503, `${method} ${path}`);
          assert.equal(answer.body, LEAVING_BODY);
        }
        assert.deepEqual(store.calls, ['put slow=v ack=1 from=1 ttl=undefined', 'get a ack=1 from=1']);
        const counters = await requestCounters(port);
        assert.equal(counters.refusedLeaving, 6);
        assert.equal((counters.responses as Record<string, number>)['503'], 6);
      });

      it('reads the whole body of a refused PUT, so the client gets the answer and a clean close', async () => {
        const port = await start(new ScriptedStore(1));
        server!.beginLeaving();
        // Below the value limit (the fast path reads it) and above it (node:http's 413 would).
        for (const size of [256 * 1024, 3 * 1024 * 1024]) {
          const { conn, errors } = await open(port);
          const body = Buffer.alloc(size, 0x61);
          // Half the body, a pause in which a server that answered at the head would close,
          // then the rest: bytes arriving at a closed socket would be answered with a reset.
          await conn.write(
            Buffer.concat([
              Buffer.from(`PUT /v0/entity?id=big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`),
              body.subarray(0, size / 2),
            ]),
          );
          await new Promise((r) => setTimeout(r, 50));
          await conn.write(body.subarray(size / 2));
          const refused = await conn.readAnswer();
          assert.equal(refused.status, 503, `${size} bytes`);
          assert.equal(refused.body.toString(), LEAVING_BODY);
          assert.equal(refused.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          assert.deepEqual(errors, [], `${size} bytes: closed without a reset`);
        }
        // The smaller one was the fast path's to refuse.
        assert.equal(server!.counters.fastPath, fastPath ? 1 : 0);
        // A chunked body too (node:http on both).
        const { conn, errors } = await open(port);
        await conn.write(
          'PUT /v0/entity?id=c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
        );
        assert.equal((await conn.readAnswer()).status, 503);
        assert.ok(await conn.waitClosed(2000));
        assert.deepEqual(errors, []);
      });

      it('still serves /v0/health, /v0/status (503), the internode paths and upgrades', async () => {
        const upgraded: string[] = [];
        const port = await start(new ScriptedStore(1), {
          internode: (req, res) => {
            res.writeHead(299);
            res.end(`internode ${req.url}`);
          },
          upgrade: (req, socket) => {
            upgraded.push(req.url!);
            socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: ringkv\r\nconnection: upgrade\r\n\r\n');
          },
        });
        server!.beginLeaving();
        const { conn } = await open(port);
        await conn.write('GET /v0/health HTTP/1.1\r\nHost: x\r\n\r\n');
        const alive = await conn.readAnswer();
        assert.equal(alive.status, 200);
        assert.deepEqual(JSON.parse(alive.body.toString()), { status: 'ok' });
        assert.notEqual(alive.headers.connection, 'close');
        await conn.write('GET /v0/health?ready=1 HTTP/1.1\r\nHost: x\r\n\r\n');
        const notReady = await conn.readAnswer();
        assert.equal(notReady.status, 503);
        assert.equal(notReady.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(notReady.body.toString()), { status: 'leaving' });
        // Still answered, with its JSON, but no longer 200: the node does not take requests.
        const leavingStatus = await call(port, '/v0/status');
        assert.equal(leavingStatus.status, 503);
        assert.equal(JSON.parse(leavingStatus.body).ready, false);
        const internode = await call(port, '/v0/internode/ping', 'POST', 'x');
        assert.equal(internode.status, 299);
        assert.equal(internode.body, 'internode /v0/internode/ping');

        const { conn: handshake } = await open(port);
        await handshake.write(
          'GET /v0/internode HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ringkv\r\n\r\n',
        );
        assert.equal((await handshake.readAnswer()).status, 101);
        assert.deepEqual(upgraded, ['/v0/internode']);
        assert.equal((await requestCounters(port)).refusedLeaving, 0);
      });

      it('close() after beginLeaving() lets a request in flight finish and then stops', async () => {
        const store = new ScriptedStore(1);
        let release: () => void = () => {};
        store.onPut = () =>
          new Promise<void>((resolve) => {
            release = resolve;
          });
        const port = await start(store);
        const { conn } = await open(port);
        await conn.write('PUT /v0/entity?id=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv');
        await until(() => store.calls.length === 1, 'the PUT to reach the store');
        server!.beginLeaving();
        const closed = server!.close(5000);
        release();
        const answer = await conn.readAnswer();
        assert.equal(answer.status, 201);
        assert.equal(answer.headers.connection, 'close');
        assert.ok(await conn.waitClosed(2000));
        await closed;
        await assert.rejects(call(port, '/v0/health'));
        server = undefined;
      });
      it('close() keeps idle connections open until the node has been leaving for a while: a request sent meanwhile gets 503, not a reset', async () => {
        const port = await start(new ScriptedStore(1));
        const { conn: used, errors } = await open(port);
        const { conn: left } = await open(port);
        for (const conn of [used, left]) {
          await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
          assert.equal((await conn.readAnswer()).status, 404);
        }
        server!.beginLeaving();
        server!.stopAccepting();
        const closed = server!.close(5000);
        // Past several of close()'s sweeps (every 50 ms): a client may be sending on an idle
        // connection right now, and closing it would reset that request.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(used.ended, false, 'an idle connection is still open 200 ms into leaving');
        await used.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        const refused = await used.readAnswer();
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.connection, 'close');
        assert.ok(await used.waitClosed(2000));
        assert.deepEqual(errors, [], 'closed after its answer, without a reset');
        // A connection left idle is closed once the node has been leaving that long, and close() ends.
        assert.ok(await left.waitClosed(limits.shutdownIdleCloseMs + 2000));
        await closed;
        server = undefined;
      });
      it('an internode handshake on a connection left open while closing is 503 with a reason, as internode.md says', async () => {
        const upgraded: string[] = [];
        const port = await start(new ScriptedStore(1), {
          upgrade: (req, socket) => {
            upgraded.push(req.url!);
            socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: ringkv\r\nconnection: upgrade\r\n\r\n');
          },
        });
        const { conn } = await open(port);
        await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal((await conn.readAnswer()).status, 404);
        server!.beginLeaving();
        server!.stopAccepting();
        const closed = server!.close(5000);
        await conn.write(
          'GET /v0/internode HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ringkv\r\n\r\n',
        );
        const refused = await conn.readAnswer();
        assert.equal(refused.status, 503);
        assert.match(refused.body.toString(), /shutting down/);
        assert.deepEqual(upgraded, []);
        assert.ok(await conn.waitClosed(2000));
        await closed;
        server = undefined;
      });
    });

    describe('stopAccepting', () => {
      it('refuses new connections, keeps the open ones answering 503 and closing, and close() still ends', async () => {
        const port = await start(new ScriptedStore(1));
        const { conn } = await open(port);
        await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal((await conn.readAnswer()).status, 404);
        server!.beginLeaving();
        server!.stopAccepting();
        await assert.rejects(call(port, '/v0/health'), 'a new connection is refused');
        await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        const refused = await conn.readAnswer();
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.connection, 'close');
        assert.ok(await conn.waitClosed(2000));
        await server!.close(5000);
        server = undefined;
      });
    });

    it('answers a range asked with HTTP/1.0 (no chunks) 505 with the reason', async () => {
      const port = await start(new ScriptedStore(1));
      const { conn } = await open(port);
      await conn.write('GET /v0/entities?start=a HTTP/1.0\r\n\r\n');
      const answer = await conn.readAnswer();
      assert.equal(answer.status, 505);
      assert.equal(answer.body.toString(), 'A range is answered in chunks: ask with HTTP/1.1');
    });

    it('answers scope=cluster from the cluster even when its ring has one node: a node joining it', async () => {
      // The ring is one other node; this node holds only what it was streamed so far.
      const store = new ScriptedStore(1);
      const cursorOf = (keys: string[]): EntryCursor => {
        let batch: Entry[] | undefined = keys.map((k, i) =>
          valueEntry(Buffer.from(k), BigInt(i + 1), Buffer.from('v'), 0),
        );
        return {
          next: async () => {
            const out = batch;
            batch = undefined;
            return out;
          },
          close: async () => {},
        };
      };
      const joining: Store = Object.assign(store, {
        scanLocal: () => cursorOf(['b']),
        scanCluster: () => cursorOf(['a', 'b', 'c']),
      });
      const port = await start(joining);
      const cluster = await call(port, '/v0/entities?start=a&scope=cluster&format=ndjson');
      assert.equal(cluster.status, 200);
      assert.deepEqual(
        cluster.body
          .split('\n')
          .filter(Boolean)
          .map((line) => (JSON.parse(line) as { key: string }).key),
        ['a', 'b', 'c'],
      );
      const local = await call(port, '/v0/entities?start=a&format=ndjson');
      assert.equal(local.body, '{"key":"b","value":"v"}\n');
    });

    describe('cluster ranges at once (limits.clusterScansMax)', () => {
      /** A cluster range cursor the test ends: by `finish`, by `fail`, or endless (`endless`: a client that stops reading). */
      class HeldCursor implements EntryCursor {
        #release: ((how: 'finish' | 'fail') => void) | undefined;
        #sent = false;
        closed = false;
        constructor(readonly endless: boolean) {}
        async next(): Promise<Entry[] | undefined> {
          if (this.endless) {
            // 64 KiB a batch, for ever: the answer fills the socket and waits for the client.
            return Array.from({ length: 64 }, (_, i) =>
              valueEntry(Buffer.from(`k${i}`), 1n, Buffer.alloc(1024, 0x61), 0),
            );
          }
          if (!this.#sent) {
            this.#sent = true;
            return [valueEntry(Buffer.from('a'), 1n, Buffer.from('v'), 0)];
          }
          const how = await new Promise<'finish' | 'fail'>((resolve) => {
            this.#release = resolve;
          });
          if (how === 'fail') throw new RingkvError('RINGKV_NOT_ENOUGH_REPLICAS', 'A peer went away');
          return undefined;
        }
        end(how: 'finish' | 'fail'): void {
          this.#release?.(how);
        }
        async close(): Promise<void> {
          this.closed = true;
        }
      }

      /** Opens a cluster range and resolves once its head is in: the request, and the answer's status and headers. */
      function openRange(
        port: number,
      ): Promise<{ req: ClientRequest; res: IncomingMessage; body: Promise<string> }> {
        return new Promise((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port, path: '/v0/entities?start=a&scope=cluster', agent: false },
            (res) => {
              const body = new Promise<string>((done) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (chunk: string) => {
                  text += chunk;
                });
                res.on('end', () => done(text));
                res.on('error', () => done(text));
                res.on('aborted', () => done(text));
              });
              resolve({ req, res, body });
            },
          );
          req.on('error', reject);
          req.end();
        });
      }

      async function openScans(port: number): Promise<number> {
        const status = await call(port, '/v0/status');
        return (JSON.parse(status.body) as { requests: { clusterScansOpen: number } }).requests
          .clusterScansOpen;
      }

      async function until(what: string, check: () => Promise<boolean>): Promise<void> {
        const deadline = Date.now() + 5000;
        while (!(await check())) {
          assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }

      it('answers 503 with Retry-After past the bound, and a range that finishes, fails, is dropped by its client or idles out frees its place', async () => {
        const cursors: HeldCursor[] = [];
        let nextEndless = false;
        const store = Object.assign(new ScriptedStore(3), {
          scanCluster: () => {
            const cursor = new HeldCursor(nextEndless);
            cursors.push(cursor);
            return cursor;
          },
        });
        const port = await start(store, { clusterScansMax: 2, socketIdleTimeoutMs: 500 });

        /** Opens ranges until the bound, and checks that one more is refused (and opens no cursor). */
        const fill = async (endless: boolean[]): Promise<{ req: ClientRequest; res: IncomingMessage }[]> => {
          const opened = [];
          for (const e of endless) {
            nextEndless = e;
            const range = await openRange(port);
            assert.equal(range.res.statusCode, 200);
            // An endless range's client stops reading: its answer fills the socket and waits.
            if (e) range.res.pause();
            opened.push(range);
          }
          const before = cursors.length;
          const refused = await call(port, '/v0/entities?start=a&scope=cluster');
          assert.equal(refused.status, 503);
          assert.equal(refused.headers['retry-after'], '1');
          assert.match(
            refused.body,
            /^Too many cluster ranges under way on this node: 2 \(the most at once\)/,
          );
          assert.equal(cursors.length, before, 'a refused range opens no cursor');
          return opened;
        };

        // Finished and failed.
        await fill([false, false]);
        assert.equal(await openScans(port), 2);
        cursors[0]!.end('finish');
        cursors[1]!.end('fail');
        await until('both are released', async () => (await openScans(port)) === 0);
        assert.ok(cursors[0]!.closed && cursors[1]!.closed);

        // A client that goes away, and one that stops reading until the socket idles out.
        const [dropped] = await fill([true, true]);
        dropped!.req.destroy();
        await until('the dropped one is released', async () => (await openScans(port)) === 1);
        nextEndless = false;
        const admitted = await openRange(port);
        assert.equal(admitted.res.statusCode, 200);
        cursors.at(-1)!.end('finish');
        assert.equal(await admitted.body, 'a\nv');
        // The stalled one (the second endless range) idles out after 500 ms of no progress.
        await until('the stalled one idles out', async () => (await openScans(port)) === 0);
        assert.ok(cursors.every((cursor) => cursor.closed));
        // The whole bound is free again.
        await fill([false, false]);
        for (const cursor of cursors.slice(-2)) cursor.end('finish');
        await until('all are released', async () => (await openScans(port)) === 0);
        const counters = JSON.parse((await call(port, '/v0/status')).body).requests;
        assert.equal(counters.clusterScansRefused, 3);
        // A range of this node only is not a cluster range: not counted (this store has no local one).
        assert.equal((await call(port, '/v0/entities?start=a')).body, 'Engine is closed');
      });

      it('gives the place back for a range that fails before its cursor opens, and for one whose client leaves before its first byte', async () => {
        let opening: 'throw' | 'held' = 'throw';
        const held: { release: () => void; closed: boolean }[] = [];
        const store = Object.assign(new ScriptedStore(3), {
          scanCluster: (): EntryCursor => {
            if (opening === 'throw') throw new RingkvError('RINGKV_NOT_ENOUGH_REPLICAS', 'A peer is down');
            let release: (() => void) | undefined;
            const first = new Promise<void>((resolve) => {
              release = resolve;
            });
            const cursor = { release: () => release!(), closed: false };
            held.push(cursor);
            let sent = false;
            return {
              // One entry once released, then the end.
              next: async () => {
                await first;
                if (sent) return undefined;
                sent = true;
                return [valueEntry(Buffer.from('a'), 1n, Buffer.from('v'), 0)];
              },
              close: async () => {
                cursor.closed = true;
              },
            };
          },
        });
        const port = await start(store, { clusterScansMax: 1 });

        // Thrown as the cursor opens: answered with its error every time, never refused for the bound.
        for (let i = 0; i < 3; i++) {
          const failed = await call(port, '/v0/entities?start=a&scope=cluster');
          assert.equal(failed.status, 504, failed.body);
        }
        assert.equal(await openScans(port), 0);

        // Its client leaves while the first page is awaited: the place is held until the cursor answers
        // and closes, then given back.
        opening = 'held';
        const leaving = request({
          host: '127.0.0.1',
          port,
          path: '/v0/entities?start=a&scope=cluster',
          agent: false,
        });
        leaving.on('error', () => undefined);
        leaving.end();
        await until('the range is open', async () => (await openScans(port)) === 1);
        leaving.destroy();
        await new Promise((resolve) => setTimeout(resolve, 50));
        held[0]!.release();
        await until('the place is given back', async () => (await openScans(port)) === 0);
        assert.ok(held[0]!.closed);
        // The bound is whole again: one more range opens and is answered.
        const next = openRange(port);
        await until('the next range is open', async () => held.length === 2);
        held[1]!.release();
        const answered = await next;
        assert.equal(answered.res.statusCode, 200);
        assert.equal(await answered.body, 'a\nv');
      });
    });

    describe('requests the parser refuses', () => {
      // Each on a connection of its own: every one of them closes it.
      const cases: [string, string | Buffer, number, RegExp][] = [
        [
          'an unknown method',
          'FOO /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n',
          400,
          /^Malformed request: unknown method$/,
        ],
        [
          'raw non-ASCII bytes in the target',
          Buffer.concat([
            Buffer.from('GET /v0/entity?id=caf'),
            Buffer.from([0xc3, 0xa9]),
            Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
          ]),
          400,
          /^Malformed request: /,
        ],
        [
          'two Content-Length headers',
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
          400,
          /^Malformed request: /,
        ],
        [
          'Content-Length with Transfer-Encoding',
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n',
          400,
          /^Malformed request: /,
        ],
        [
          'a bad chunk size',
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\na\r\n0\r\n\r\n',
          400,
          /^Malformed request: /,
        ],
        ['CONNECT', 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n', 400, /^CONNECT is not supported$/],
        [
          'an HTTP/1.1 request without Host',
          'GET /v0/entity?id=a HTTP/1.1\r\n\r\n',
          400,
          /^Missing Host header$/,
        ],
        [
          'a PUT without Host',
          'PUT /v0/entity?id=a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc',
          400,
          /^Missing Host header$/,
        ],
        [
          'a key far over the limit (the head over its bound inside the request line)',
          `GET /v0/entity?id=${'k'.repeat(40_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
          414,
          /^Request target too long: .* \(a key is at most 64 bytes\)$/,
        ],
        [
          'headers over the bound',
          `GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n${'X-Filler: y\r\n'.repeat(4000)}\r\n`,
          431,
          /^Request head too large: over \d+ bytes$/,
        ],
      ];
      for (const [name, request, status, reason] of cases) {
        it(`answers ${name} with ${status} and a reason, then closes; the server carries on`, async () => {
          const port = await start(new ScriptedStore(1));
          const { conn } = await open(port);
          await conn.write(request);
          const answer = await conn.readAnswer();
          assert.equal(answer.status, status);
          assert.match(answer.body.toString(), reason);
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          // Answered, so counted: in /metrics and in /v0/status's responses.
          assert.equal(answered(status), 1);
          const responses = (await requestCounters(port)).responses as Record<string, number>;
          assert.equal(responses[status], 1);
          assert.equal((await call(port, '/v0/health')).status, 200);
          assert.deepEqual(logged, []);
        });
      }
    });

    describe('an Expect other than 100-continue', () => {
      it('answers 417 with a reason, drops the body, and keeps the connection', async () => {
        const store = new ScriptedStore(1);
        const port = await start(store);
        const { conn } = await open(port);
        await conn.write(
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc' +
            'GET /v0/entity?id=b HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        const refused = await conn.readAnswer(2000);
        assert.equal(refused.status, 417);
        assert.equal(refused.body.toString(), 'Unsupported Expect header: only 100-continue');
        assert.equal((await conn.readAnswer(2000)).status, 404);
        assert.deepEqual(store.calls, ['get b ack=1 from=1']);
        assert.equal(answered(417), 1);
      });
    });

    describe('Expect: 100-continue', () => {
      const expectHead = (target: string, bytes: number) =>
        `PUT ${target} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${bytes}\r\n\r\n`;

      it('refuses a value over the limit, bad parameters and a leaving node before the body is sent', async () => {
        const store = new ScriptedStore(1);
        const port = await start(store);
        const cases: [string, number, number, () => void][] = [
          [`/v0/entity?id=a`, 9 * 1024 * 1024, 413, () => {}],
          [`/v0/entity?id=a&ack=0`, 10, 400, () => {}],
          [`/v0/entity?id=a`, 10, 503, () => server!.beginLeaving()],
        ];
        for (const [target, bytes, status, before] of cases) {
          before();
          const { conn } = await open(port);
          await conn.write(expectHead(target, bytes));
          // The final answer comes first, with no 100 (Continue): the client need not send the value.
          const refused = await conn.readAnswer(2000);
          assert.equal(refused.status, status, `${target}, ${bytes} bytes`);
          assert.equal(refused.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
        }
        assert.deepEqual(store.calls, []);
      });

      it('acts on no request pipelined behind a refusal that closes the connection', async () => {
        const store = new ScriptedStore(1);
        const port = await start(store);
        const heads = [
          // Refused before any 100; this client sent its value anyway, and a DELETE behind it.
          `${expectHead('/v0/entity?id=a&ack=0', 3)}abc`,
          'GET /v0/entity?id=a HTTP/1.1\r\n\r\n',
        ];
        for (const head of heads) {
          const { conn } = await open(port);
          await conn.write(`${head}DELETE /v0/entity?id=b HTTP/1.1\r\nHost: x\r\n\r\n`);
          const refused = await conn.readAnswer(2000);
          assert.equal(refused.status, 400);
          assert.equal(refused.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
        }
        // The DELETE is never answered: done anyway, a client retrying it could delete a later write.
        assert.deepEqual(store.calls, []);
      });

      it('asks for the body of an acceptable PUT and stores it', async () => {
        const store = new ScriptedStore(1);
        const port = await start(store);
        const { conn } = await open(port);
        await conn.write(expectHead('/v0/entity?id=a', 3));
        assert.equal((await conn.readAnswer(2000)).status, 100);
        await conn.write('abc');
        assert.equal((await conn.readAnswer(2000)).status, 201);
        assert.deepEqual(store.calls, ['put a=abc ack=1 from=1 ttl=undefined']);
      });
    });

    describe('a head over its bound, read in pieces', () => {
      // Each piece is read on its own; the first stays under the bound (16 KiB here), so the
      // parser overflows on a read that starts inside the line that is too long.
      const cases: [string, string[], number][] = [
        [
          'a key far over the limit, the read that overflows holding the end of the head',
          [`GET /v0/entity?id=${'k'.repeat(10_000)}`, `${'k'.repeat(30_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
          414,
        ],
        [
          'a key far over the limit, the read that overflows inside it',
          [`GET /v0/entity?id=${'k'.repeat(10_000)}`, 'k'.repeat(20_000), ' HTTP/1.1\r\nHost: x\r\n\r\n'],
          414,
        ],
        [
          'a header far over the bound, the read that overflows inside its value',
          [`GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nX-Filler: ${'y '.repeat(5_000)}`, 'y '.repeat(15_000)],
          431,
        ],
      ];
      for (const [name, pieces, status] of cases) {
        it(`answers ${name} with ${status}`, async () => {
          const port = await start(new ScriptedStore(1));
          const { conn } = await open(port);
          for (const piece of pieces) {
            if (conn.ended) break;
            await conn.write(piece).catch(() => {});
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          const answer = await conn.readAnswer();
          assert.equal(answer.status, status, answer.body.toString());
          assert.equal(answer.headers.connection, 'close');
        });
      }
    });

    describe('a request cut short by the end of the client side', () => {
      const cases: [string, string][] = [
        ['a head', 'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n'],
        ['a PUT body', 'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc'],
        [
          'a head behind an answered request',
          'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\nGET /v0/entity?id=b HTT',
        ],
      ];
      for (const [name, text] of cases) {
        it(`answers ${name} 400 "Malformed request: Invalid EOF state", then closes`, async () => {
          const port = await start(new ScriptedStore(1));
          const { conn } = await open(port);
          conn.socket.end(text);
          let answer = await conn.readAnswer();
          if (answer.status === 404) answer = await conn.readAnswer();
          assert.equal(answer.status, 400);
          assert.equal(answer.body.toString(), 'Malformed request: Invalid EOF state');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          assert.equal(answered(400), 1);
        });
      }

      it('answers whole requests sent before the client ended its side, the last with close', async () => {
        const store = new ScriptedStore(1);
        // Slower than the client's end: node:http has seen it by the time the answers are due.
        store.onPut = () => new Promise((resolve) => setTimeout(resolve, 50));
        store.onGet = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 50));
        const port = await start(store);
        const { conn } = await open(port);
        conn.socket.end(
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv' +
            'DELETE /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n' +
            'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        const statuses: number[] = [];
        let last = await conn.readAnswer(2000);
        statuses.push(last.status);
        for (let i = 0; i < 2; i++) {
          last = await conn.readAnswer(2000);
          statuses.push(last.status);
        }
        assert.deepEqual(statuses, [201, 202, 404]);
        assert.equal(last.headers.connection, 'close');
        assert.ok(await conn.waitClosed(2000));
        assert.deepEqual(store.calls, [
          'put a=v ack=1 from=1 ttl=undefined',
          'delete a ack=1 from=1',
          'get a ack=1 from=1',
        ]);
      });

      it('closes without an answer after whole requests and blank lines', async () => {
        const port = await start(new ScriptedStore(1));
        const { conn } = await open(port);
        conn.socket.end('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n\r\n');
        assert.equal((await conn.readAnswer()).status, 404);
        assert.ok(await conn.waitClosed(2000));
        await assert.rejects(conn.readAnswer(100), /closed before a whole answer/);
      });
    });

    describe('two Host headers', () => {
      it('answers 400 "Duplicate Host header" on any route, and closes the connection', async () => {
        const port = await start(new ScriptedStore(1));
        const heads = [
          'GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
          'GET /v0/entity?id=a HTTP/1.1\r\nhost: x\r\nHOST: x\r\n\r\n',
          'DELETE /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nHost: x\r\n\r\n',
          'PUT /v0/entity?id=a HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 3\r\n\r\nabc',
          'GET /v0/status HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
          'GET /v0/health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
        ];
        for (const head of heads) {
          const { conn, errors } = await open(port);
          // A plain request first, so that with the fast path in front the connection starts there.
          await conn.write(`GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n${head}`);
          assert.equal((await conn.readAnswer()).status, 404);
          const answer = await conn.readAnswer();
          assert.equal(answer.status, 400, JSON.stringify(head));
          assert.equal(answer.body.toString(), 'Duplicate Host header');
          assert.equal(answer.headers.connection, 'close');
          assert.ok(await conn.waitClosed(2000));
          assert.deepEqual(errors, []);
        }
      });

      it('refuses an upgrade with two Host headers', async () => {
        const upgraded: string[] = [];
        const port = await start(new ScriptedStore(1), {
          upgrade: (req, socket) => {
            upgraded.push(req.url!);
            socket.destroy();
          },
        });
        const { conn } = await open(port);
        await conn.write(
          'GET /v0/internode HTTP/1.1\r\nhost: x\r\nhost: y\r\nconnection: upgrade\r\nupgrade: ringkv\r\n\r\n',
        );
        const answer = await conn.readAnswer();
        assert.equal(answer.status, 400);
        assert.equal(answer.body.toString(), 'Duplicate Host header');
        assert.deepEqual(upgraded, []);
      });
    });

    describe('a damaged file', () => {
      it('answers 503 without detail and logs one line naming the file and offset', async () => {
        const store = new ScriptedStore(1);
        store.onGet = async () => {
          throw new CorruptionError('/data/000012.sst', 4096, 'block checksum mismatch');
        };
        const port = await start(store);
        const { conn } = await open(port);
        await conn.write('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n');
        const answer = await conn.readAnswer();
        assert.equal(answer.status, 503);
        assert.equal(answer.body.toString(), 'Data unavailable: a damaged file on this node; see its log');
        assert.equal(logged.length, 1);
        assert.match(logged[0]!, /^RINGKV_CORRUPTION: Corruption in \/data\/000012\.sst at offset 4096: /);
        const counters = await requestCounters(port);
        assert.equal(counters.corruption, 1);
        assert.equal(counters.internalErrors, 0);
        assert.equal(counters.fastPath, fastPath ? 1 : 0);
      });

      it('keeps I/O errors 500, with one log line', async () => {
        const store = new ScriptedStore(1);
        store.onGet = async () => {
          throw new RingkvError('RINGKV_IO', 'Cannot read /data/000012.sst: EIO');
        };
        const port = await start(store);
        const answer = await call(port, '/v0/entity?id=a');
        assert.equal(answer.status, 500);
        assert.equal(answer.body, 'Internal error');
        assert.deepEqual(logged, ['RINGKV_IO: Cannot read /data/000012.sst: EIO']);
      });
    });
  });
