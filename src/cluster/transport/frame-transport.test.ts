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
    const timeout = new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 2000).unref());
    assert.equal(await Promise.race([raw.closed.then(() => 'closed' as const), timeout]), 'closed');
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
