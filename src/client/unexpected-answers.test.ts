/**
 * What the client does with answers a node does not give: a redirect (never
 * followed), bytes that are not HTTP (no failover, the unreadable-answer
 * error), statuses it does not expect (ServerError, exit 4, not a bad
 * request), and deadlines a timer cannot hold (refused up front). Each
 * stand-in listens on 127.0.0.1 port 0 in this process; the command-line
 * checks run `ringkv` against them.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { after, describe, it } from 'node:test';
import { answer, type Handler } from '../../test/support/answers.js';
import { ringkv } from '../../test/support/cli.js';
import { isRingkvError } from '../util/errors.js';
import { BadRequestError, RingkvClient, ServerError } from './index.js';

interface StandIn {
  readonly url: string;
  /** Request targets seen, in order. */
  readonly seen: string[];
}

const servers: (Server | NetServer)[] = [];
const sockets = new Set<Socket>();

after(() => {
  for (const server of servers) server.close();
  for (const socket of sockets) socket.destroy();
});

async function listen(server: Server | NetServer): Promise<string> {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A node:http stand-in. */
async function standIn(handler: Handler): Promise<StandIn> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  return { url: await listen(server), seen };
}

/** A raw TCP stand-in: `reply` gets the socket once the request's first bytes came. */
async function rawStandIn(reply: (socket: Socket) => void): Promise<StandIn> {
  const seen: string[] = [];
  const server = createNetServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', (data) => {
      seen.push(data.toString('latin1').split('\r\n')[0]!);
      reply(socket);
    });
  });
  return { url: await listen(server), seen };
}

/** A healthy node: 200 with a value (a range of one entry, a status document), 201, 202. */
const healthy: Handler = (req, res) => {
  if (req.url!.startsWith('/v0/status')) {
    return answer(200, JSON.stringify({ node: 'x', ready: true, cluster: [], clusterSize: 1 }))(req, res);
  }
  if (req.url!.startsWith('/v0/entities'))
    return answer(200, 'k\nv', { 'transfer-encoding': 'chunked' })(req, res);
  answer(req.method === 'GET' ? 200 : req.method === 'PUT' ? 201 : 202, 'v')(req, res);
};

async function drain(entries: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entries);
}

/** Every call of the client, each once. */
function everyCall(client: RingkvClient): [string, () => Promise<unknown>][] {
  return [
    ['get', () => client.get('k')],
    ['put', () => client.put('k', 'v')],
    ['delete', () => client.delete('k')],
    ['status', () => client.status()],
    ['scan', () => drain(client.scan('a'))],
  ];
}

/** An error of class `type` with `code`, naming `node`. */
function failure(
  type: typeof ServerError | typeof BadRequestError,
  code: string,
  node: string,
  status?: number,
): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof type, `${type.name} expected: ${(err as Error)?.stack ?? String(err)}`);
    assert.equal(err.code, code, String(err));
    assert.equal(err.node, node);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  };
}

describe('answers a node does not give', () => {
  it('never follows a redirect: every call is a ServerError naming the node, and the target sees nothing', async () => {
    const target = await standIn(healthy);
    for (const status of [301, 302, 303, 307, 308]) {
      const redirector = await standIn((req, res) => {
        answer(status, 'Moved', { location: `${target.url}${req.url!.replace(/id=[^&]*/, 'id=hijacked')}` })(
          req,
          res,
        );
      });
      // The target is also the next node: a redirect is no reason to fail over either.
      const client = new RingkvClient({ nodes: [redirector.url, target.url] });
      for (const [name, call] of everyCall(client)) {
        await assert.rejects(
          call(),
          failure(ServerError, 'RINGKV_SERVER', redirector.url, status),
          `${status} ${name}`,
        );
      }
      assert.equal(redirector.seen.length, 5);
    }
    assert.deepEqual(target.seen, []);
  });

  it('an answer that is not HTTP is the unreadable-answer error, with no failover', async () => {
    const garbage = await rawStandIn((socket) => socket.end('garbage garbage\r\n\r\n'));
    const next = await standIn(healthy);
    const client = new RingkvClient({ nodes: [garbage.url, next.url] });
    for (const [name, call] of everyCall(client)) {
      await assert.rejects(call(), failure(ServerError, 'RINGKV_PROTOCOL', garbage.url), name);
    }
    assert.equal(garbage.seen.length, 5);
    assert.deepEqual(next.seen, [], 'no failover on an unreadable answer');
  });

  it('a body that breaks its framing, or a status that is not JSON, is the unreadable-answer error naming the node', async () => {
    const badChunk = await rawStandIn((socket) =>
      socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nk\nv\r\nzz\r\n'),
    );
    const next = await standIn(healthy);
    const client = new RingkvClient({ nodes: [badChunk.url, next.url] });
    await assert.rejects(client.get('k'), failure(ServerError, 'RINGKV_PROTOCOL', badChunk.url));
    await assert.rejects(drain(client.scan('a')), failure(ServerError, 'RINGKV_PROTOCOL', badChunk.url, 200));
    const keyless = await standIn(answer(200, '\nvalue without a key', { 'transfer-encoding': 'chunked' }));
    await assert.rejects(
      drain(new RingkvClient({ nodes: keyless.url }).scan('a')),
      failure(ServerError, 'RINGKV_PROTOCOL', keyless.url, 200),
    );
    const notJson = await standIn(answer(200, 'not{json'));
    await assert.rejects(
      new RingkvClient({ nodes: notJson.url }).status(),
      failure(ServerError, 'RINGKV_PROTOCOL', notJson.url, 200),
    );
    assert.deepEqual(next.seen, []);
  });

  it("a status that is JSON but not a node's status document (another server on the port) is the unreadable-answer error", async () => {
    for (const body of [
      '{}',
      'null',
      '[1,2]',
      '"up"',
      '{"status":"ok"}',
      '{"node":"x","ready":true,"cluster":"x","clusterSize":1}',
    ]) {
      const other = await standIn(answer(200, body));
      await assert.rejects(
        new RingkvClient({ nodes: other.url }).status(),
        failure(ServerError, 'RINGKV_PROTOCOL', other.url, 200),
        body,
      );
    }
  });

  it('still fails over when a node closes the connection before any answer', async () => {
    const closer = await rawStandIn((socket) => socket.destroy());
    const next = await standIn(healthy);
    const client = new RingkvClient({ nodes: [closer.url, next.url] });
    assert.deepEqual(await client.get('k'), Buffer.from('v'));
    assert.deepEqual(next.seen, ['GET /v0/entity?id=k']);
  });

  it('a status the client does not expect is a ServerError, not a bad request; 400, 413 and 414 are bad requests', async () => {
    const node = await standIn((req, res) => {
      const status = Number(new URL(req.url!, 'http://x').searchParams.get('id'));
      answer(status, `reason ${status}`)(req, res);
    });
    const client = new RingkvClient({ nodes: node.url });
    for (const status of [401, 403, 405, 409, 418, 429, 431, 451, 502]) {
      await assert.rejects(
        client.get(String(status)),
        failure(ServerError, 'RINGKV_SERVER', node.url, status),
      );
    }
    // A 404 answers a read only.
    await assert.rejects(client.put('404', 'v'), failure(ServerError, 'RINGKV_SERVER', node.url, 404));
    await assert.rejects(client.delete('404'), failure(ServerError, 'RINGKV_SERVER', node.url, 404));
    for (const [status, code] of [
      [400, 'RINGKV_BAD_REQUEST'],
      [413, 'RINGKV_VALUE_TOO_LARGE'],
      [414, 'RINGKV_KEY_TOO_LONG'],
    ] as const) {
      await assert.rejects(client.put(String(status), 'v'), failure(BadRequestError, code, node.url, status));
    }
    const lost = await standIn(answer(404, 'No such path'));
    await assert.rejects(
      new RingkvClient({ nodes: lost.url }).status(),
      failure(ServerError, 'RINGKV_SERVER', lost.url, 404),
    );
    const unauthorized = await standIn(answer(401, 'Who are you'));
    await assert.rejects(
      drain(new RingkvClient({ nodes: unauthorized.url }).scan('a')),
      failure(ServerError, 'RINGKV_SERVER', unauthorized.url, 401),
    );
  });

  it('refuses a timeout above 2147483647 ms, the longest a timer holds, instead of timing out at once', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      for (const timeoutMs of [2 ** 31, 3_000_000_000, Number.MAX_SAFE_INTEGER]) {
        assert.throws(
          () => new RingkvClient({ nodes: 'http://127.0.0.1:1', timeoutMs }),
          (err) =>
            isRingkvError(err, 'RINGKV_CONFIG') && /timeoutMs.*2147483647/.test((err as Error).message),
        );
      }
      const node = await standIn(healthy);
      const client = new RingkvClient({ nodes: node.url, timeoutMs: 2 ** 31 - 1 });
      assert.deepEqual(await client.get('k'), Buffer.from('v'));
      assert.deepEqual(await client.get('k', { timeoutMs: 2 ** 31 - 1 }), Buffer.from('v'));
      const tooLong = { timeoutMs: 3_000_000_000 };
      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => client.get('k', tooLong)],
        ['put', () => client.put('k', 'v', tooLong)],
        ['delete', () => client.delete('k', tooLong)],
        ['status', () => client.status(tooLong)],
        ['scan', async () => drain(client.scan('a', undefined, tooLong))],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(
          call(),
          (err) =>
            isRingkvError(err, 'RINGKV_CONFIG') && /timeoutMs.*2147483647/.test((err as Error).message),
          name,
        );
      }
      assert.equal(node.seen.length, 2, 'no request with a deadline refused');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings.filter((w) => w.name === 'TimeoutOverflowWarning').map(String),
        [],
        'no timer overflowed',
      );
    } finally {
      process.off('warning', onWarning);
    }
  });

  describe('ringkv commands', () => {
    it('exit 2 with "Bad --timeout" for a timeout above 2147483647 ms', async () => {
      const node = await standIn(healthy);
      const refused = await ringkv(['get', 'k', '--timeout', '2147483648', '--url', node.url]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /^ringkv: Bad --timeout: .*2147483647/);
      assert.deepEqual(node.seen, []);
      const longest = await ringkv(['get', 'k', '--timeout', '2147483647', '--url', node.url]);
      assert.equal(longest.code, 0, longest.stderr);
      assert.equal(longest.stdout.toString(), 'v');
    });

    it('exit 4 for a redirect, a 401, a 404 on a write and an answer that is not HTTP; no failover', async () => {
      const target = await standIn(healthy);
      const redirector = await standIn(
        answer(307, 'Moved', { location: `${target.url}/v0/entity?id=hijacked` }),
      );
      const unauthorized = await standIn(answer(401, 'Who are you'));
      const lost = await standIn(answer(404, 'No such path'));
      const garbage = await rawStandIn((socket) => socket.end('garbage garbage\r\n\r\n'));
      for (const [first, pattern] of [
        [redirector, /^ringkv: Failed: 307 Moved \(http/],
        [unauthorized, /^ringkv: Failed: 401 Who are you/],
        [lost, /^ringkv: Failed: 404 No such path/],
        [garbage, /^ringkv: Failed: .*HTTP/],
      ] as const) {
        const run = await ringkv(['put', 'k', 'v', '--url', `${first.url},${target.url}`]);
        assert.equal(run.code, 4, run.stderr);
        assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
        assert.match(run.stderr, pattern);
      }
      assert.deepEqual(target.seen, []);
    });
  });
});
