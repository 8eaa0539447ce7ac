import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import {
  pauseAfterNextAnswer,
  sleep,
  startPeer,
  TestHandler,
  type TestPeer,
} from '../../../test/support/transport-peer.js';
import { transportSuite } from '../../../test/support/transport-suite.js';
import { valueEntry } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import { makeProof } from './auth.js';
import {
  decodeMessage,
  encodeFrame,
  FRAME_HEADER_BYTES,
  type Message,
  MessageType,
  PROTOCOL,
  writeFrameHeader,
} from './format.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameTransport } from './frame-transport.js';

transportSuite('FrameTransport', { create: (options) => new FrameTransport(options) });

interface RawConnection {
  readonly socket: net.Socket;
  readonly status: number;
  /** Frames received after the handshake, decoded. */
  readonly frames: { id: number; message: Message | string }[];
  readonly closed: Promise<void>;
}

/** Opens an internode connection by hand, as docs/formats/internode.md describes it. */
async function rawConnect(port: number, headers: readonly string[]): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  const frames: { id: number; message: Message | string }[] = [];
  const decoder = new FrameDecoder(1 << 20, (type, id, body) =>
    frames.push({ id, message: decodeMessage(type, body) }),
  );
  socket.write(
    `GET /v0/internode HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`,
  );
  const status = await new Promise<number>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const code = Number(head.toString('latin1', 9, 12));
      if (code === 101) {
        socket.on('data', (more: Buffer) => decoder.push(more));
        if (head.length > end + 4) decoder.push(head.subarray(end + 4));
      }
      resolve(code);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before answering')));
  });
  return { socket, status, frames, closed };
}

const UPGRADE = ['Connection: Upgrade', `Upgrade: ${PROTOCOL}`];

/** Whether the server closed `raw` within `ms`. */
function closedWithin(raw: RawConnection, ms: number): Promise<'closed' | 'open'> {
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<'open'>((resolve) => {
    timer = setTimeout(() => resolve('open'), ms);
  });
  return Promise.race([raw.closed.then(() => 'closed' as const), open]).finally(() => clearTimeout(timer));
}

describe('FrameTransport: binary protocol specifics', () => {
  const peers: TestPeer[] = [];
  const transports: FrameTransport[] = [];
  after(async () => {
    for (const t of transports) await t.close();
    for (const p of peers) await p.close();
  });
  async function peer(options: Parameters<typeof startPeer>[0] = {}): Promise<TestPeer> {
    const p = await startPeer(options);
    peers.push(p);
    return p;
  }
  function transport(options: ConstructorParameters<typeof FrameTransport>[0] = {}): FrameTransport {
    const t = new FrameTransport(options);
    transports.push(t);
    return t;
  }

  test('requests made in one tick leave in one socket write, answers in few', async () => {
    const p = await peer();
    const t = transport();
    await t.ping(p.url, Date.now() + 5000);
    // Count write calls at the socket layer, on sockets whose far end is the peer.
    const proto = net.Socket.prototype as unknown as Record<
      '_write' | '_writev',
      (...args: unknown[]) => unknown
    >;
    const original = { _write: proto._write, _writev: proto._writev };
    let clientWrites = 0;
    for (const name of ['_write', '_writev'] as const) {
      proto[name] = function (this: net.Socket, ...args: unknown[]) {
        if (this.remotePort === p.port) clientWrites++;
        return original[name].apply(this, args);
      };
    }
    const serverWritesBefore = p.internode.stats().socketWrites;
    const requestsBefore = t.stats().requests;
    try {
      const reads = Array.from({ length: 200 }, (_, i) =>
        t.read(p.url, Buffer.from(`k${i}`), Date.now() + 5000),
      );
      await Promise.all(reads);
    } finally {
      proto._write = original._write;
      proto._writev = original._writev;
    }
    assert.equal(t.stats().requests - requestsBefore, 200);
    assert.ok(
      clientWrites >= 1 && clientWrites <= 2,
      `client socket writes for 200 requests: ${clientWrites}`,
    );
    const serverWrites = p.internode.stats().socketWrites - serverWritesBefore;
    assert.ok(
      serverWrites >= 1 && serverWrites <= 10,
      `server socket writes for 200 answers: ${serverWrites}`,
    );
  });

  test('a request that cannot be encoded fails alone: no deadline left behind, the link serves the next', async () => {
    const p = await peer();
    const t = transport();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // An expiry past what 6 bytes of ms hold.
      const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'), 2 ** 48);
      await assert.rejects(t.write(p.url, entry, Date.now() + 200), (err: unknown) => {
        assert.ok(isRingkvError(err, 'RINGKV_BAD_REQUEST'), String(err));
        assert.match((err as Error).message, /Cannot encode a request to/);
        return true;
      });
      // Past that deadline and the shared timer's next tick: nothing rejects with nobody listening.
      await sleep(400);
      assert.deepEqual(unhandled, []);
      await t.write(p.url, valueEntry(Buffer.from('k'), 2n, Buffer.from('v')), Date.now() + 5000);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('the handshake by hand: PING answered, unknown types and bad bodies get ERROR, the link survives', async () => {
    const p = await peer();
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    const unknown = Buffer.alloc(9);
    writeFrameHeader(unknown, 0, 0x10, 2, 0);
    const badScan = Buffer.alloc(10);
    writeFrameHeader(badScan, 0, MessageType.Scan, 3, 1);
    raw.socket.write(Buffer.concat([encodeFrame({ type: MessageType.Ping }, 1), unknown, badScan]));
    raw.socket.write(encodeFrame({ type: MessageType.Read, key: Buffer.from('nothing') }, 4));
    for (let i = 0; i < 100 && raw.frames.length < 4; i++) await sleep(10);
    const byId = new Map(raw.frames.map((f) => [f.id, f.message]));
    // The PONG carries the peer's wall clock (the test peer's is Date.now()).
    const pong = byId.get(1) as { type: number; wallMs: number };
    assert.equal(pong.type, MessageType.Pong);
    assert.ok(Math.abs(pong.wallMs - Date.now()) < 60_000, String(pong.wallMs));
    assert.equal((byId.get(2) as { code: string }).code, 'RINGKV_PROTOCOL');
    assert.equal((byId.get(3) as { code: string }).code, 'RINGKV_PROTOCOL');
    assert.deepEqual(byId.get(4), { type: MessageType.Entry, entry: undefined });
    raw.socket.destroy();
  });

  test('an oversized frame length closes the connection', async () => {
    const p = await peer({ frameBytesMax: 4096 });
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    const header = Buffer.alloc(9);
    writeFrameHeader(header, 0, MessageType.Read, 1, 5000);
    raw.socket.write(header);
    await raw.closed;
    assert.equal(raw.frames.length, 0);
  });

  test('a peer that half-closes (part of a frame sent, then its side ended) gets the connection ended, not kept open', async () => {
    const p = await peer();
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    // A frame header (length 100 big-endian, type, id) promising a body that never comes, then FIN.
    raw.socket.end(Buffer.from([0, 0, 0, 100, 0x01, 0, 0, 0, 7]));
    assert.equal(await closedWithin(raw, 2000), 'closed');
  });

  test('a connection that goes silent after its upgrade is closed once nothing has arrived for the idle bound', async () => {
    const p = await peer({ idleTimeoutMs: 200 });
    // Read before connecting: the time from it is at least the connection's silence.
    const connectingMs = Date.now();
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    assert.equal(await closedWithin(raw, 3000), 'closed', 'still open 3 s after the upgrade');
    const silentMs = Date.now() - connectingMs;
    // Not before the bound (a millisecond of slack for the clocks' rounding).
    assert.ok(silentMs >= 199, `closed after ${silentMs} ms`);
    assert.equal(p.internode.stats().idleClosed, 1);
    for (let i = 0; i < 100 && p.internode.stats().connections > 0; i++) await sleep(5);
    assert.equal(p.internode.stats().connections, 0);
  });

  test('a link whose client sends heartbeats stays open past the idle bound, while a silent one beside it is closed', async () => {
    const p = await peer({ idleTimeoutMs: 300 });
    // A PING every 20 ms: fifteen per bound.
    const t = transport({ heartbeatMs: 20, probeIntervalMs: 60_000 });
    await t.connect([p.url]);
    const silent = await rawConnect(p.port, UPGRADE);
    assert.equal(silent.status, 101);
    // Three bounds: the silent connection is closed within them, the heartbeating link never.
    const watchedMs = Date.now();
    assert.equal(await closedWithin(silent, 900), 'closed', 'the silent connection is still open');
    await sleep(900 - (Date.now() - watchedMs));
    assert.ok(t.isUp(p.url), 'the heartbeating link went down');
    assert.equal(t.stats().connectAttempts, 1, 'the heartbeating link was reopened');
    assert.equal(p.internode.stats().connections, 1);
    assert.equal(p.internode.stats().idleClosed, 1);
    await t.ping(p.url, Date.now() + 5000);
  });

  test('a connection silent past the idle bound is not cut while its request is being handled, and is closed once idle', async () => {
    const p = await peer({ idleTimeoutMs: 200 });
    const read = p.handler.read;
    // Three bounds of work on the one request the peer sends.
    p.handler.read = async (key) => {
      await sleep(600);
      return read.call(p.handler, key);
    };
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    const sentMs = Date.now();
    raw.socket.write(encodeFrame({ type: MessageType.Read, key: Buffer.from('k') }, 1));
    // Silent since, so the connection is ended once the answer is out: it must come first.
    assert.equal(await closedWithin(raw, 3000), 'closed', 'still open once idle');
    const closedMs = Date.now() - sentMs;
    assert.ok(closedMs >= 590, `closed after ${closedMs} ms, before the handler was done`);
    assert.deepEqual(raw.frames, [{ id: 1, message: { type: MessageType.Entry, entry: undefined } }]);
    assert.equal(p.internode.stats().idleClosed, 1);
  });

  test('a silent peer that does not close its side after the idle end is destroyed a bound later', async () => {
    const p = await peer({ idleTimeoutMs: 200 });
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    // It reads the server's FIN and keeps its own side open.
    raw.socket.allowHalfOpen = true;
    let fin = false;
    raw.socket.once('end', () => {
      fin = true;
    });
    // The server's close sends nothing after its FIN: watched from the server's side.
    for (let i = 0; i < 300 && p.internode.stats().connections > 0; i++) await sleep(5);
    assert.equal(p.internode.stats().connections, 0, 'still open 1.5 s after the upgrade');
    assert.ok(fin, 'destroyed without the FIN first');
    assert.equal(p.internode.stats().idleClosed, 1);
  });

  test("a pause of the server's event loop past the idle bound: a frame that came during it keeps the connection", async () => {
    const p = await peer({ idleTimeoutMs: 300 });
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    // Reaches the server's socket buffer at once, and waits there unread while the loop is blocked
    // past the connection's idle deadline: the late timer must read it before it judges.
    raw.socket.write(encodeFrame({ type: MessageType.Ping }, 1));
    const until = Date.now() + 600;
    while (Date.now() < until) {
      // the event loop is blocked
    }
    for (let i = 0; i < 100 && raw.frames.length === 0 && !raw.socket.destroyed; i++) await sleep(5);
    assert.equal(raw.frames.length, 1, 'no PONG: the connection was cut');
    assert.equal((raw.frames[0]!.message as Message).type, MessageType.Pong);
    assert.equal(p.internode.stats().idleClosed, 0);
    // Then silent: closed after the bound.
    assert.equal(await closedWithin(raw, 2000), 'closed');
    assert.equal(p.internode.stats().idleClosed, 1);
  });

  test('handshakes: wrong path or token 400; with a secret, missing proof 401, bad, stale or replayed 403', async () => {
    const plain = await peer();
    const noToken = await rawConnect(plain.port, ['Connection: Upgrade', 'Upgrade: websocket']);
    assert.equal(noToken.status, 400);

    const p = await peer({ secret: 'k3y' });
    assert.equal((await rawConnect(p.port, UPGRADE)).status, 401);
    const wrong = makeProof('other', p.url);
    assert.equal((await rawConnect(p.port, [...UPGRADE, `ringkv-proof: ${wrong}`])).status, 403);
    const stale = makeProof('k3y', p.url, { nowMs: Date.now() - 10 * 60_000 });
    assert.equal((await rawConnect(p.port, [...UPGRADE, `ringkv-proof: ${stale}`])).status, 403);
    const good = makeProof('k3y', p.url);
    const accepted = await rawConnect(p.port, [...UPGRADE, `ringkv-proof: ${good}`]);
    assert.equal(accepted.status, 101);
    accepted.socket.destroy();
    assert.equal((await rawConnect(p.port, [...UPGRADE, `ringkv-proof: ${good}`])).status, 403, 'replay');
    assert.ok(p.internode.stats().handshakesRefused >= 4);
  });

  test('a refused handshake that the peer resets after reading the answer: the server goes on', async () => {
    // node:http hands the upgrade's socket over with no 'error' listener: the reset's ECONNRESET was uncaught.
    const p = await peer();
    const refused = await rawConnect(p.port, ['Connection: Upgrade', 'Upgrade: websocket']);
    assert.equal(refused.status, 400);
    refused.socket.resetAndDestroy();
    p.internode.leave();
    const leaving = await rawConnect(p.port, UPGRADE);
    assert.equal(leaving.status, 503);
    leaving.socket.resetAndDestroy();
    assert.equal((await rawConnect(p.port, UPGRADE)).status, 503);
  });

  test('server close(): answers in flight are delivered, then connections end and new ones are refused', async () => {
    const p = await peer();
    const t = transport({ probeIntervalMs: 100 });
    await p.handler.engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
    p.handler.delayTurns = () => 20;
    const inFlight = t.read(p.url, Buffer.from('k'), Date.now() + 60_000);
    for (let i = 0; i < 100 && p.handler.calls === 0; i++) await sleep(5);
    const closing = p.internode.close();
    assert.deepEqual((await inFlight)?.value, Buffer.from('v'));
    await closing;
    assert.equal(p.internode.stats().connections, 0);
    for (let i = 0; i < 100 && t.isUp(p.url); i++) await sleep(10);
    assert.equal(t.isUp(p.url), false);
    assert.equal((await rawConnect(p.port, UPGRADE)).status, 503);
  });

  test('server close(): a request that crosses the start of the close on the wire is answered, not refused', async () => {
    const p = await peer();
    const t = transport({ probeIntervalMs: 100 });
    await p.handler.engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
    await t.ping(p.url, Date.now() + 5000);
    const closing = p.internode.close();
    // Sent after close() began, as a peer does that has not yet heard this node is leaving.
    assert.deepEqual((await t.read(p.url, Buffer.from('k'), Date.now() + 5000))?.value, Buffer.from('v'));
    await closing;
    assert.equal(p.internode.stats().connections, 0);
  });

  test('heartbeats measure the clock skew from the PONG; the peer header and LEAVING travel the handshake and frames', async () => {
    const handler = new TestHandler();
    handler.wallMs = () => Date.now() + 5000;
    const seen: string[] = [];
    const p = await peer({ handler, onPeerSeen: (url) => seen.push(url) });
    const samples: { skewMs: number; rttMs: number }[] = [];
    const t = transport({
      selfUrl: 'http://127.0.0.1:2',
      heartbeatMs: 30,
      onClockSample: (_peer, skewMs, rttMs) => samples.push({ skewMs, rttMs }),
    });
    await t.connect([p.url]);
    assert.deepEqual(seen, ['http://127.0.0.1:2']);
    for (let i = 0; i < 200 && samples.length < 3; i++) await sleep(10);
    assert.ok(samples.length >= 3, `samples: ${samples.length}`);
    for (const sample of samples) {
      // The peer's clock is 5 s ahead; a sample is known to within half its round trip (and a ms of rounding).
      assert.ok(Math.abs(sample.skewMs - 5000) <= sample.rttMs / 2 + 1, JSON.stringify(sample));
    }
    const status = t.peerStatus(p.url);
    assert.equal(status.state, 'up');
    assert.ok(status.skewMs !== undefined && Math.abs(status.skewMs - 5000) <= status.rttMs! / 2 + 1);
    await t.announceLeaving(Date.now() + 5000);
    assert.deepEqual(handler.leavingFrom, ['http://127.0.0.1:2']);
  });

  test('a heartbeat times its round trip by the monotonic clock: a wall clock stepped meanwhile moves the skew sample, not the round trip', async () => {
    const p = await peer();
    const samples: { skewMs: number; rttMs: number }[] = [];
    let steps = 0;
    const t = transport({
      heartbeatMs: 30,
      // Stepped 10 s forward at every reading, as if set between the ping and its answer.
      wallMs: () => Date.now() + 10_000 * steps++,
      onClockSample: (_peer, skewMs, rttMs) => samples.push({ skewMs, rttMs }),
    });
    await t.connect([p.url]);
    for (let i = 0; i < 200 && samples.length < 3; i++) await sleep(10);
    assert.ok(samples.length >= 3, `samples: ${samples.length}`);
    for (const sample of samples) assert.ok(sample.rttMs >= 0 && sample.rttMs < 1000, JSON.stringify(sample));
  });

  test('a wrong cluster secret: RINGKV_UNAUTHORIZED for the request that tried, one down report, handshakes bounded by the quarantine', async () => {
    const p = await peer({ secret: 'right' });
    const down: string[] = [];
    const t = transport({
      secret: 'wrong',
      quarantineMs: 50,
      probeIntervalMs: 250,
      onPeerDown: (url) => down.push(url),
    });
    const first = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
    assert.ok(isRingkvError(first, 'RINGKV_UNAUTHORIZED'), String(first));
    const startedMs = Date.now();
    for (let i = 0; i < 40; i++) {
      const err = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
      assert.ok(isRingkvError(err), String(err));
      assert.match((err as Error).message, /cluster secret proof/);
      await sleep(5);
    }
    const elapsedMs = Date.now() - startedMs;
    const attempts = t.stats().connectAttempts;
    assert.ok(
      attempts <= 2 + Math.ceil(elapsedMs / 50) + Math.ceil(elapsedMs / 250),
      `${attempts} handshakes in ${elapsedMs} ms`,
    );
    assert.equal(p.internode.stats().handshakesRefused, attempts);
    assert.deepEqual(down, [p.url], 'reported down once, not per refused handshake');
  });

  test('frames sent behind a refused handshake, in the same packet, are never served', async () => {
    const p = await peer({ secret: 'k3y' });
    const socket = net.connect(p.port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    const write = encodeFrame(
      { type: MessageType.Write, entry: valueEntry(Buffer.from('k'), 9n, Buffer.from('v')) },
      1,
    );
    socket.write(
      Buffer.concat([
        Buffer.from(
          `GET /v0/internode HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nConnection: Upgrade\r\nUpgrade: ${PROTOCOL}\r\n` +
            `ringkv-proof: ${makeProof('wrong', p.url)}\r\n\r\n`,
        ),
        write,
      ]),
    );
    await closed;
    assert.match(answer, /^HTTP\/1\.1 403 /);
    assert.equal(p.handler.calls, 0);
    assert.equal(p.internode.stats().requests, 0);
  });

  test('frames of exactly the largest size are served; one byte more closes the connection', async () => {
    const p = await peer({ frameBytesMax: 4096 });
    const raw = await rawConnect(p.port, UPGRADE);
    assert.equal(raw.status, 101);
    raw.socket.write(
      encodeFrame({ type: MessageType.Read, key: Buffer.alloc(4096 - FRAME_HEADER_BYTES, 1) }, 1),
    );
    for (let i = 0; i < 100 && raw.frames.length === 0; i++) await sleep(10);
    assert.deepEqual(raw.frames, [{ id: 1, message: { type: MessageType.Entry, entry: undefined } }]);
    raw.socket.write(
      encodeFrame({ type: MessageType.Read, key: Buffer.alloc(4097 - FRAME_HEADER_BYTES, 1) }, 2),
    );
    await raw.closed;
    assert.equal(raw.frames.length, 1);
  });

  test('a hung peer (handshake timed out) is refused at once, without waiting on more handshakes, until it is seen', async () => {
    const held: net.Socket[] = [];
    const hung = net.createServer((socket) => {
      held.push(socket);
    });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', () => resolve()));
    const port = (hung.address() as net.AddressInfo).port;
    const url = `http://127.0.0.1:${port}`;
    const t = transport({ connectTimeoutMs: 100, probeIntervalMs: 60_000, quarantineMs: 1 });
    try {
      const first = await t.read(url, Buffer.from('k'), Date.now() + 60_000).catch((err: unknown) => err);
      assert.ok(isRingkvError(first, 'RINGKV_UNAVAILABLE'), String(first));
      assert.match((first as Error).message, /timed out/);
      const attempts = t.stats().connectAttempts;
      await sleep(5);
      for (let i = 0; i < 5; i++) {
        const err = await t.read(url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
        assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
      }
      assert.equal(t.stats().connectAttempts, attempts, 'no handshake per request to a hung peer');
      // Its own handshake reaching us says it is alive: the link tries again at once.
      t.peerSeen(url);
      assert.equal(t.stats().connectAttempts, attempts + 1);
    } finally {
      await t.close();
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  test('LEAVING during a handshake: the attempt is dropped, its requests refused, and the link stays down', async () => {
    const p = await peer();
    const t = transport({ probeIntervalMs: 60_000 });
    const queued = t.read(p.url, Buffer.from('k'), Date.now() + 60_000);
    t.peerLeaving(p.url);
    await assert.rejects(queued, (err: unknown) => isRingkvError(err, 'RINGKV_UNAVAILABLE'));
    await sleep(50);
    assert.equal(t.isUp(p.url), false, 'the handshake that was under way did not open the link');
    assert.equal(t.stats().connectFailures, 0, 'leaving is not a failed connection');
  });

  test("a pause of this node's event loop past the handshake timeout: the peer's 101 that waited unread opens the link", async () => {
    const p = await peer();
    const t = transport({ connectTimeoutMs: 200, probeIntervalMs: 60_000 });
    const undo = pauseAfterNextAnswer(p, 600);
    try {
      await t.connect([p.url]);
    } finally {
      undo();
    }
    assert.ok(t.isUp(p.url), 'the handshake was not given up as timed out');
    assert.equal(t.stats().connectFailures, 0);
    assert.equal(await t.read(p.url, Buffer.from('k'), Date.now() + 5000), undefined);
  });

  test('a peer that stops answering on an open connection is marked down instead of timing out each request', async () => {
    const p = await peer();
    const t = transport({ unresponsiveMs: 300, probeIntervalMs: 100 });
    await t.ping(p.url, Date.now() + 5000);
    p.handler.hang.add('a');
    p.handler.hang.add('b');
    const deadline = Date.now() + 60_000;
    const results = await Promise.allSettled([
      t.read(p.url, Buffer.from('a'), deadline),
      t.read(p.url, Buffer.from('b'), deadline),
    ]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(isRingkvError(result.reason, 'RINGKV_UNAVAILABLE'), String(result.reason));
    }
    // The node itself is alive, so a probe reconnects and a fresh request works.
    p.handler.hang.clear();
    await p.handler.engine.write(valueEntry(Buffer.from('a'), 1n, Buffer.from('x')));
    let value: Buffer | undefined;
    for (let i = 0; i < 100 && value === undefined; i++) {
      value = await t.read(p.url, Buffer.from('a'), Date.now() + 5000).then(
        (entry) => entry?.value,
        () => sleep(50).then(() => undefined),
      );
    }
    assert.deepEqual(value, Buffer.from('x'));
  });
});

/**
 * A peer that answers the Upgrade with 101 (plus `afterHandshake`, in the
 * same write) and then hands the socket to `onOpen`: for peers that misbehave
 * after the handshake. Reads nothing past the handshake unless onOpen does.
 */
async function fakePeer(
  onOpen: (socket: net.Socket, connection: number) => void,
  afterHandshake: (connection: number) => Buffer = () => Buffer.alloc(0),
): Promise<{ url: string; sockets: net.Socket[]; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    const connection = sockets.length;
    sockets.push(socket);
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      socket.write(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${PROTOCOL}\r\n\r\n`,
          ),
          afterHandshake(connection),
        ]),
      );
      if (head.length > end + 4) socket.unshift(head.subarray(end + 4));
      onOpen(socket, connection);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Frames a peer receives on `socket`, decoded, as they come. */
function readFrames(socket: net.Socket): { id: number; message: Message | string }[] {
  const frames: { id: number; message: Message | string }[] = [];
  const decoder = new FrameDecoder(1 << 20, (type, id, body) =>
    frames.push({ id, message: decodeMessage(type, body) }),
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.resume();
  return frames;
}

describe('FrameTransport: peers that misbehave after the handshake', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  async function fake(...args: Parameters<typeof fakePeer>): ReturnType<typeof fakePeer> {
    const p = await fakePeer(...args);
    cleanups.push(() => p.close());
    return p;
  }
  function transport(options: ConstructorParameters<typeof FrameTransport>[0] = {}): FrameTransport {
    const t = new FrameTransport(options);
    cleanups.push(() => t.close());
    return t;
  }

  test('a peer that accepts the link and then never answers is marked down by the heartbeat alone', async () => {
    // It reads what it is sent (so nothing backs up) and writes nothing.
    const p = await fake((socket) => socket.resume());
    const down: string[] = [];
    // A 1 ms timer resolution: a heartbeat's deadline and the silence bound fall due on the same tick.
    const t = transport({
      heartbeatMs: 20,
      unresponsiveMs: 100,
      timerResolutionMs: 1,
      probeIntervalMs: 60_000,
      onPeerDown: (peer) => down.push(peer),
    });
    await t.connect([p.url]);
    assert.ok(t.isUp(p.url));
    for (let i = 0; i < 300 && down.length === 0; i++) await sleep(10);
    assert.deepEqual(down, [p.url], 'marked down');
    assert.equal(t.isUp(p.url), false);
  });

  test('a flapping peer (each link accepted, then closed): requests fail fast, handshakes and up/down reports bounded by the quarantine', async () => {
    const p = await fake((socket) => socket.end());
    const events: string[] = [];
    const t = transport({
      quarantineMs: 50,
      probeIntervalMs: 250,
      onPeerUp: () => events.push('up'),
      onPeerDown: () => events.push('down'),
    });
    const startedMs = Date.now();
    let requests = 0;
    while (Date.now() - startedMs < 500 && requests < 200) {
      const err = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
      assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
      requests++;
      await sleep(5);
    }
    const elapsedMs = Date.now() - startedMs;
    const allowed = 2 + Math.ceil(elapsedMs / 50) + Math.ceil(elapsedMs / 250);
    assert.ok(
      t.stats().connectAttempts <= allowed,
      `${t.stats().connectAttempts} handshakes in ${elapsedMs} ms`,
    );
    assert.ok(events.length <= 2 * allowed, `${events.length} reports in ${elapsedMs} ms`);
    assert.ok(requests > t.stats().connectAttempts, `${requests} requests`);
  });

  test('a bad frame length after a good answer: the answer is delivered, every other request on the link fails at once', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const p = await fake((socket) => {
        const frames = readFrames(socket);
        const check = setInterval(() => {
          if (frames.length < 5) return;
          clearInterval(check);
          // One good answer, then a length too short to hold type and id: garbage.
          socket.write(
            Buffer.concat([
              encodeFrame({ type: MessageType.Entry, entry: undefined }, frames[0]!.id),
              Buffer.from([0, 0, 0, 2, 0xff, 0xff]),
            ]),
          );
        }, 5);
      });
      const down: string[] = [];
      const t = transport({ probeIntervalMs: 60_000, onPeerDown: (peer) => down.push(peer) });
      const deadline = Date.now() + 60_000;
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => t.read(p.url, Buffer.from(`k${i}`), deadline)),
      );
      assert.deepEqual(results[0], { status: 'fulfilled', value: undefined });
      for (const result of results.slice(1)) {
        assert.equal(result.status, 'rejected');
        assert.ok(isRingkvError(result.reason, 'RINGKV_UNAVAILABLE'), String(result.reason));
        assert.match((result.reason as Error).message, /frame length/);
      }
      assert.deepEqual(down, [p.url]);
      assert.equal(t.isUp(p.url), false);
      await sleep(20);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a peer that announces a large frame and stalls: its link is presumed hung, requests fail without waiting for their deadline', async () => {
    const p = await fake((socket) => {
      const frames = readFrames(socket);
      const check = setInterval(() => {
        if (frames.length === 0) return;
        clearInterval(check);
        // A frame of nearly the largest size, of which only the header and a few bytes come.
        const header = Buffer.alloc(FRAME_HEADER_BYTES + 10);
        writeFrameHeader(header, 0, MessageType.Entry, frames[0]!.id, (1 << 20) - FRAME_HEADER_BYTES);
        socket.write(header);
      }, 5);
    });
    const t = transport({ frameBytesMax: 1 << 20, unresponsiveMs: 200, probeIntervalMs: 60_000 });
    const err = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
    assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
    assert.match((err as Error).message, /sent nothing for/);
  });

  test('garbage right behind the 101, in the same packet: the link ends down, and its last news is that', async () => {
    const p = await fake(
      () => {},
      () => Buffer.from([0, 0, 0, 1, 0]),
    );
    const events: string[] = [];
    const t = transport({
      probeIntervalMs: 60_000,
      onPeerUp: () => events.push('up'),
      onPeerDown: () => events.push('down'),
    });
    await t.connect([p.url]);
    await sleep(20);
    assert.equal(t.isUp(p.url), false);
    assert.equal(events.at(-1), 'down', events.join(', '));
  });

  test('after a reconnect, an answer carrying the id of a request made on the old link (or an unknown id) resolves nothing', async () => {
    const oldIds: number[] = [];
    const p = await fake((socket, connection) => {
      const frames = readFrames(socket);
      const check = setInterval(() => {
        if (frames.length === 0) return;
        clearInterval(check);
        const id = frames[0]!.id;
        if (connection === 0) {
          oldIds.push(id);
          socket.destroy();
          return;
        }
        const stale = valueEntry(Buffer.from('k'), 1n, Buffer.from('stale'));
        const fresh = valueEntry(Buffer.from('k'), 2n, Buffer.from('fresh'));
        socket.write(
          Buffer.concat([
            encodeFrame({ type: MessageType.Entry, entry: stale }, 0x7fff_0000),
            ...oldIds.map((old) => encodeFrame({ type: MessageType.Entry, entry: stale }, old)),
            encodeFrame({ type: MessageType.Entry, entry: fresh }, id),
          ]),
        );
      }, 5);
    });
    const t = transport({ probeIntervalMs: 60_000, quarantineMs: 1 });
    const first = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000).catch((e: unknown) => e);
    assert.ok(isRingkvError(first, 'RINGKV_UNAVAILABLE'), String(first));
    await sleep(5);
    const second = await t.read(p.url, Buffer.from('k'), Date.now() + 60_000);
    assert.deepEqual(second?.value, Buffer.from('fresh'));
    assert.equal(oldIds.length, 1);
  });

  test('a peer that stops reading: requests are refused once the queue passes its bound, not buffered without end', async () => {
    // Reads nothing after the handshake: its socket buffers fill, then the sender's.
    const p = await fake(() => {});
    const t = transport({ queuedBytesMax: 1 << 20, unresponsiveMs: 60_000, probeIntervalMs: 60_000 });
    await t.connect([p.url]);
    const value = Buffer.alloc(256 * 1024, 7);
    const deadline = Date.now() + 60_000;
    let refusal: unknown;
    const accepted: Promise<unknown>[] = [];
    for (let i = 0; i < 2000 && refusal === undefined; i++) {
      const write = t.write(p.url, valueEntry(Buffer.from(`k${i}`), 1n, value), deadline);
      accepted.push(write.catch((err: unknown) => err));
      await Promise.race([write.catch((err: unknown) => (refusal = err)), sleep(1)]);
    }
    assert.ok(isRingkvError(refusal, 'RINGKV_UNAVAILABLE'), String(refusal));
    assert.match((refusal as Error).message, /not keeping up/);
    // What was accepted is still waiting (its peer is slow, not gone); closing fails it.
    await t.close();
    const settled = await Promise.all(accepted.slice(0, -1));
    for (const err of settled) assert.ok(isRingkvError(err, 'RINGKV_CLOSED'), String(err));
  });

  test('a peer that stops reading and answering is found hung by the heartbeat even once the send queue is full', async () => {
    // Reads nothing after the handshake. The queue is filled with anti-entropy requests, which do
    // not count as waiting, so only the heartbeat's PING can show that the peer is silent.
    const p = await fake(() => {});
    const down: string[] = [];
    const t = transport({
      queuedBytesMax: 1 << 20,
      heartbeatMs: 400,
      unresponsiveMs: 100,
      timerResolutionMs: 1,
      probeIntervalMs: 60_000,
      onPeerDown: (peer) => down.push(peer),
    });
    await t.connect([p.url]);
    const body = Buffer.alloc(4 << 20, 7);
    const sent: Promise<unknown>[] = [];
    // Until the socket buffers are full for good: many refusals in a row.
    let refusals = 0;
    let refusal: unknown;
    for (let i = 0; i < 500 && refusals < 20 && down.length === 0; i++) {
      const request = t.antiEntropy(p.url, body, Date.now() + 60_000);
      const outcome = await Promise.race([request.catch((err: unknown) => err), sleep(2)]);
      if (isRingkvError(outcome)) {
        refusal = outcome;
        refusals++;
      } else {
        sent.push(request.catch((err: unknown) => err));
        refusals = 0;
      }
    }
    assert.match(String(refusal), /not keeping up/);
    for (let i = 0; i < 300 && down.length === 0; i++) await sleep(10);
    assert.deepEqual(down, [p.url], 'marked down');
    assert.equal(t.isUp(p.url), false);
    for (const err of await Promise.all(sent))
      assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
  });

  test('a request whose deadline passes while the link is still opening rejects with RINGKV_TIMEOUT then', async () => {
    let release: (() => void) | undefined;
    const held = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        release = () =>
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${PROTOCOL}\r\n\r\n`,
          );
      });
    });
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise((resolve) => held.close(() => resolve())));
    const url = `http://127.0.0.1:${(held.address() as net.AddressInfo).port}`;
    const t = transport({ connectTimeoutMs: 60_000, probeIntervalMs: 60_000 });
    const err = await t.read(url, Buffer.from('k'), Date.now() + 50).catch((e: unknown) => e);
    assert.ok(isRingkvError(err, 'RINGKV_TIMEOUT'), String(err));
    assert.ok(release !== undefined, 'the handshake was still waiting');
    assert.equal(t.stats().timeouts, 1);
    await t.close();
  });
});
