/**
 * The HTTP server in-process over a scripted Store: statuses the single-node
 * e2e tests cannot reach (504, 500, 503), the cluster hooks, and shutdown.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { PutOptions, ReplicaOptions, Store } from '../cluster/store.js';
import type { Entry, EntryCursor, ScanRange } from '../storage/index.js';
import { valueEntry } from '../storage/index.js';
import { RingkvError } from '../util/errors.js';
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
