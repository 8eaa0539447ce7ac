/**
 * The behaviour every Transport shows, run on each implementation
 * (frame-transport.test.ts, http-transport.test.ts) against real node:http
 * servers on 127.0.0.1. A gap goes through `supports` with a reason, never
 * through an edit of a case.
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { PeerLinks, Transport, TransportStats } from '../../src/cluster/transport/contract.js';
import { type Entry, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { isRingkvError, RingkvError } from '../../src/util/errors.js';
import {
  closedPort,
  pauseAfterNextAnswer,
  sleep,
  startPeer,
  TestHandler,
  type TestPeer,
} from './transport-peer.js';

export interface TransportUnderTest extends Transport, PeerLinks {
  stats(): TransportStats;
}

export interface CreateOptions {
  secret?: string;
  selfUrl?: string;
  probeIntervalMs?: number;
  quarantineMs?: number;
  unresponsiveMs?: number;
  onPeerUp?: (peer: string) => void;
}

export interface TransportSuiteOptions {
  readonly create: (options: CreateOptions) => TransportUnderTest;
}

const LONG_MS = 60_000;

function later(ms = LONG_MS): number {
  return Date.now() + ms;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<RingkvError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isRingkvError(err), `expected a RingkvError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

function key(i: number): Buffer {
  return Buffer.from(`key-${String(i).padStart(4, '0')}`);
}

export function transportSuite(name: string, options: TransportSuiteOptions): void {
  describe(`${name}: Transport behaviour`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });
    async function peer(serverOptions: Parameters<typeof startPeer>[0] = {}): Promise<TestPeer> {
      const started = await startPeer(serverOptions);
      cleanups.push(() => started.close());
      return started;
    }
    function transport(transportOptions: CreateOptions = {}): TransportUnderTest {
      const created = options.create(transportOptions);
      cleanups.push(() => created.close());
      return created;
    }

    test('write then read returns the entry; absent keys read as undefined', async () => {
      const p = await peer();
      const t = transport();
      const entries: Entry[] = [
        valueEntry(Buffer.from('a'), 5n, Buffer.from('alpha')),
        valueEntry(Buffer.from('empty'), 6n, Buffer.alloc(0)),
        valueEntry(Buffer.from('ttl'), 7n, Buffer.from('x'), 1_900_000_000_000),
        tombstoneEntry(Buffer.from('gone'), 2n ** 63n + 9n),
        valueEntry(Buffer.from([0, 255, 10]), 8n, Buffer.alloc(100_000, 7)),
      ];
      for (const entry of entries) await t.write(p.url, entry, later());
      for (const entry of entries) assert.deepEqual(await t.read(p.url, entry.key, later()), entry);
      assert.equal(await t.read(p.url, Buffer.from('missing'), later()), undefined);
      // The replica kept the version the writer chose: internode WRITE carries it.
      assert.equal((await p.handler.engine.get(Buffer.from('gone')))?.version, 2n ** 63n + 9n);
      assert.ok(t.isUp(p.url));
    });

    test('scan pages through [start, end) with the more flag', async () => {
      const p = await peer();
      const t = transport();
      for (let i = 0; i < 50; i++) await p.handler.engine.write(valueEntry(key(i), 1n, Buffer.from(`v${i}`)));
      const seen: string[] = [];
      let start = key(5);
      for (let page = 0; page < 10; page++) {
        const answer = await t.scan(p.url, start, key(45), 15, later());
        assert.ok(answer.entries.length <= 15);
        seen.push(...answer.entries.map((e) => e.key.toString()));
        if (!answer.more) break;
        start = Buffer.concat([answer.entries.at(-1)!.key, Buffer.from([0])]);
      }
      assert.deepEqual(
        seen,
        Array.from({ length: 40 }, (_, i) => key(i + 5).toString()),
      );
      const open = await t.scan(p.url, key(48), undefined, 100, later());
      assert.deepEqual(
        open.entries.map((e) => e.key.toString()),
        [key(48).toString(), key(49).toString()],
      );
      assert.equal(open.more, false);
    });

    test('many concurrent requests are matched to their own answers', async () => {
      const p = await peer();
      const t = transport();
      for (let i = 0; i < 300; i++) await p.handler.engine.write(valueEntry(key(i), BigInt(i + 1), key(i)));
      // Answers come back out of order: each call waits 0..6 turns, by key.
      p.handler.delayTurns = (k) => (k.readUInt8(k.length - 1) * 7 + k.length) % 7;
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => t.read(p.url, key(i), later())),
      );
      results.forEach((entry, i) => {
        assert.ok(entry !== undefined);
        assert.deepEqual(entry.value, key(i));
        assert.equal(entry.version, BigInt(i + 1));
      });
      const writes = Array.from({ length: 100 }, (_, i) =>
        t.write(p.url, valueEntry(key(1000 + i), 3n, Buffer.from(`w${i}`)), later()),
      );
      await Promise.all(writes);
      for (let i = 0; i < 100; i++) {
        assert.deepEqual((await p.handler.engine.get(key(1000 + i)))?.value, Buffer.from(`w${i}`));
      }
    });

    test("a write answers the replica's conflict version, and the entry is stored all the same", async () => {
      const p = await peer();
      const t = transport();
      const entry = valueEntry(Buffer.from('conflicted'), 5n, Buffer.from('v'));
      assert.equal(await t.write(p.url, entry, later()), undefined);
      p.handler.conflict = 2n ** 64n - 2n;
      const second = valueEntry(Buffer.from('conflicted'), 6n, Buffer.from('w'));
      assert.equal(await t.write(p.url, second, later()), 2n ** 64n - 2n);
      assert.deepEqual(await p.handler.engine.get(Buffer.from('conflicted')), second);
      p.handler.conflict = undefined;
      assert.equal(await t.write(p.url, entry, later()), undefined);
    });

    test("the peer handler's error codes reach the caller", async () => {
      const errors: unknown[] = [];
      const p = await peer({ onError: (err) => errors.push(err) });
      const t = transport();
      p.handler.failWith = new RingkvError('RINGKV_CLOSED', 'Engine is closed');
      const err = await rejectsWith(
        t.write(p.url, valueEntry(Buffer.from('k'), 1n, Buffer.from('v')), later()),
        'RINGKV_CLOSED',
      );
      assert.match(err.message, /Engine is closed/);
      p.handler.failWith = new TypeError('boom at /srv/ringkv/dist/x.js');
      const internal = await rejectsWith(t.read(p.url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      assert.equal(errors.length, 1, 'an unexpected handler error is reported to the node');
      // Its text is for that node's log: it could reach a client in a 504's reasons.
      assert.doesNotMatch(internal.message, /boom|\/srv/);
      p.handler.failWith = undefined;
      assert.equal(await t.read(p.url, Buffer.from('k'), later()), undefined, 'the link still works');
    });

    test('a request past its deadline rejects with RINGKV_TIMEOUT; others go on', async () => {
      const p = await peer();
      const t = transport();
      p.handler.hang.add('stuck');
      await p.handler.engine.write(valueEntry(Buffer.from('ok'), 1n, Buffer.from('fine')));
      const stuck = t.read(p.url, Buffer.from('stuck'), Date.now() + 150);
      const fine = t.read(p.url, Buffer.from('ok'), later());
      assert.deepEqual((await fine)?.value, Buffer.from('fine'));
      await rejectsWith(stuck, 'RINGKV_TIMEOUT');
      assert.equal(t.stats().timeouts, 1);
      assert.ok(t.isUp(p.url), 'one slow request does not mark the peer down');
      const calls = p.handler.calls;
      await rejectsWith(t.read(p.url, Buffer.from('ok'), Date.now() - 1), 'RINGKV_TIMEOUT');
      assert.equal(p.handler.calls, calls, 'an expired request is not sent');
    });

    test('a peer that drops connections: immediate failures, at most one attempt per quarantine or probe', async () => {
      let connections = 0;
      const dropper = net.createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', () => resolve()));
      cleanups.push(() => new Promise((resolve) => dropper.close(() => resolve())));
      const url = `http://127.0.0.1:${(dropper.address() as AddressInfo).port}`;
      const t = transport({ probeIntervalMs: 250, quarantineMs: 100 });
      const startedMs = Date.now();
      let requests = 0;
      // Deadlines a minute away: each rejection below is the down state, not a timeout.
      for (let i = 0; i < 50 && Date.now() - startedMs < 1000; i++) {
        await rejectsWith(t.read(url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
        requests++;
        await sleep(20);
      }
      const elapsedMs = Date.now() - startedMs;
      assert.equal(t.isUp(url), false);
      assert.ok(requests >= 10, `requests made: ${requests}`);
      const allowed = 2 + Math.ceil(elapsedMs / 250) + Math.ceil(elapsedMs / 100);
      assert.ok(connections >= 1 && connections <= allowed, `${connections} connections in ${elapsedMs} ms`);
      assert.ok(t.stats().refusedDown >= requests - allowed);
    });

    test('a closed port: requests fail at once and probes stay bounded', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const t = transport({ probeIntervalMs: 250, quarantineMs: 100 });
      const startedMs = Date.now();
      let requests = 0;
      for (let i = 0; i < 50 && Date.now() - startedMs < 1000; i++) {
        await rejectsWith(
          t.write(url, valueEntry(Buffer.from('k'), 1n, Buffer.from('v')), later()),
          'RINGKV_UNAVAILABLE',
        );
        requests++;
        await sleep(20);
      }
      const elapsedMs = Date.now() - startedMs;
      const attempts = t.stats().connectAttempts;
      assert.ok(
        attempts >= 1 && attempts <= 2 + Math.ceil(elapsedMs / 250) + Math.ceil(elapsedMs / 100),
        `${attempts} attempts in ${elapsedMs} ms`,
      );
      assert.ok(requests > attempts, `${requests} requests, ${attempts} attempts`);
    });

    test('requests in flight when the peer goes away reject with RINGKV_UNAVAILABLE; it is found again when back', async () => {
      const first = await startPeer();
      const t = transport({ probeIntervalMs: 100 });
      assert.equal(await t.read(first.url, Buffer.from('k'), later()), undefined);
      first.handler.hang.add('stuck');
      const inFlight = t.read(first.url, Buffer.from('stuck'), later());
      await sleep(50);
      await first.close();
      await rejectsWith(inFlight, 'RINGKV_UNAVAILABLE');
      assert.equal(t.isUp(first.url), false);
      await rejectsWith(t.read(first.url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');

      const again = await peer({ port: first.port });
      await again.handler.engine.write(valueEntry(Buffer.from('k'), 4n, Buffer.from('back')));
      let value: Buffer | undefined;
      for (let i = 0; i < 100 && value === undefined; i++) {
        try {
          value = (await t.read(first.url, Buffer.from('k'), later()))?.value;
        } catch (err) {
          assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
          await sleep(50);
        }
      }
      assert.deepEqual(value, Buffer.from('back'));
      assert.ok(t.isUp(first.url));
    });

    test('a peer that is back is used by the first request after the quarantine, without waiting for a probe', async () => {
      const first = await startPeer();
      // Probes a minute apart: only the request itself can find the peer back.
      const t = transport({ probeIntervalMs: LONG_MS, quarantineMs: 20 });
      assert.equal(await t.read(first.url, Buffer.from('k'), later()), undefined);
      await first.close();
      await rejectsWith(t.read(first.url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      assert.equal(t.isUp(first.url), false);

      const again = await peer({ port: first.port });
      await again.handler.engine.write(valueEntry(Buffer.from('k'), 4n, Buffer.from('back')));
      await sleep(40);
      assert.deepEqual((await t.read(first.url, Buffer.from('k'), later()))?.value, Buffer.from('back'));
      assert.ok(t.isUp(first.url));
    });

    test('a dead peer: requests within the quarantine fail without an attempt; after it, many requests share one', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const t = transport({ probeIntervalMs: LONG_MS, quarantineMs: 300 });
      await rejectsWith(t.read(url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      const before = t.stats().connectAttempts;
      const burst = () =>
        Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            rejectsWith(t.read(url, key(i), later()), 'RINGKV_UNAVAILABLE'),
          ),
        );
      await burst();
      assert.equal(t.stats().connectAttempts, before, 'no attempt within the quarantine');
      await sleep(350);
      await burst();
      assert.equal(t.stats().connectAttempts, before + 1, 'one attempt for the whole burst');
      assert.equal(t.isUp(url), false);
    });

    test('peerSeen: a link marked down tries again at once', async () => {
      const port = await closedPort();
      const url = `http://127.0.0.1:${port}`;
      const t = transport({ probeIntervalMs: LONG_MS, quarantineMs: LONG_MS });
      await rejectsWith(t.read(url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      const back = await peer({ port });
      await rejectsWith(t.read(url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      t.peerSeen(url);
      for (let i = 0; i < 100 && !t.isUp(url); i++) await sleep(10);
      assert.ok(t.isUp(url), 'up after peerSeen');
      await back.handler.engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
      assert.deepEqual((await t.read(url, Buffer.from('k'), later()))?.value, Buffer.from('v'));
    });

    test('peerLeaving: new requests fail at once, requests in flight are answered', async () => {
      const p = await peer();
      const t = transport({ probeIntervalMs: LONG_MS });
      await p.handler.engine.write(valueEntry(Buffer.from('slow'), 1n, Buffer.from('v')));
      assert.equal(await t.read(p.url, Buffer.from('k'), later()), undefined);
      p.handler.delayTurns = () => 50;
      const inFlight = t.read(p.url, Buffer.from('slow'), later());
      for (let i = 0; i < 100 && p.handler.calls < 2; i++) await sleep(5);
      assert.equal(p.handler.calls, 2, 'the slow read reached the peer');
      t.peerLeaving(p.url);
      const calls = p.handler.calls;
      const refused = await rejectsWith(t.read(p.url, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      assert.match(refused.message, /leaving/);
      assert.deepEqual((await inFlight)?.value, Buffer.from('v'));
      assert.equal(t.isUp(p.url), false);
      assert.equal(t.peerStatus(p.url).state, 'leaving');
      assert.equal(p.handler.calls, calls, 'the refused request was not sent');
    });

    test('connect() opens every link; each handshake names the sender; announceLeaving reaches every peer', async () => {
      const self = 'http://127.0.0.1:1';
      const seen: string[] = [];
      const ups: string[] = [];
      const p1 = await peer({ onPeerSeen: (url) => seen.push(`p1 ${url}`) });
      const p2 = await peer({ onPeerSeen: (url) => seen.push(`p2 ${url}`) });
      const dead = `http://127.0.0.1:${await closedPort()}`;
      const t = transport({ selfUrl: self, onPeerUp: (url) => ups.push(url) });
      await t.connect([p1.url, p2.url, dead]);
      assert.ok(t.isUp(p1.url) && t.isUp(p2.url));
      assert.equal(t.isUp(dead), false);
      assert.deepEqual(new Set(seen), new Set([`p1 ${self}`, `p2 ${self}`]));
      assert.deepEqual(new Set(ups), new Set([p1.url, p2.url]));
      await t.announceLeaving(later());
      assert.deepEqual(p1.handler.leavingFrom, [self]);
      assert.deepEqual(p2.handler.leavingFrom, [self]);
    });

    test('cluster secret: a missing or wrong proof is refused, the right one accepted', async () => {
      const p = await peer({ secret: 'correct horse' });
      const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
      await rejectsWith(transport().write(p.url, entry, later()), 'RINGKV_UNAUTHORIZED');
      await rejectsWith(
        transport({ secret: 'battery staple' }).write(p.url, entry, later()),
        'RINGKV_UNAUTHORIZED',
      );
      assert.equal(p.handler.calls, 0, 'nothing reached the handler');
      const t = transport({ secret: 'correct horse' });
      await t.write(p.url, entry, later());
      assert.deepEqual(await t.read(p.url, Buffer.from('k'), later()), entry);
    });

    test('anti-entropy bodies travel whole both ways; a peer without anti-entropy answers RINGKV_BAD_REQUEST', async () => {
      const p = await peer({ handler: new TestHandler({ serveAntiEntropy: true }) });
      const t = transport();
      const body = Buffer.alloc(300_000);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 8)) & 0xff;
      const answer = await t.antiEntropy(p.url, body, later());
      assert.deepEqual(answer, Buffer.concat([Buffer.from('answer:'), body]));
      assert.deepEqual(p.handler.antiEntropyBodies, [body]);
      assert.deepEqual(await t.antiEntropy(p.url, Buffer.alloc(0), later()), Buffer.from('answer:'));
      p.handler.failWith = new RingkvError('RINGKV_CLOSED', 'Engine is closed');
      await rejectsWith(t.antiEntropy(p.url, Buffer.from('x'), later()), 'RINGKV_CLOSED');
      p.handler.failWith = undefined;

      const plain = await peer();
      const err = await rejectsWith(
        t.antiEntropy(plain.url, Buffer.from('digest'), later()),
        'RINGKV_BAD_REQUEST',
      );
      assert.match(err.message, /anti-entropy/);
      assert.ok(t.isUp(plain.url), 'a refused message does not mark the peer down');
      assert.equal(await t.read(plain.url, Buffer.from('k'), later()), undefined);
    });

    test('anti-entropy requests need the cluster secret like the others', async () => {
      const p = await peer({ secret: 'correct horse', handler: new TestHandler({ serveAntiEntropy: true }) });
      await rejectsWith(transport().antiEntropy(p.url, Buffer.from('x'), later()), 'RINGKV_UNAUTHORIZED');
      await rejectsWith(
        transport({ secret: 'battery staple' }).antiEntropy(p.url, Buffer.from('x'), later()),
        'RINGKV_UNAUTHORIZED',
      );
      assert.equal(p.handler.calls, 0, 'nothing reached the handler');
      const t = transport({ secret: 'correct horse' });
      assert.deepEqual(await t.antiEntropy(p.url, Buffer.from('x'), later()), Buffer.from('answer:x'));
    });

    test('a long anti-entropy request does not make a quiet peer look unresponsive', async () => {
      const p = await peer({ handler: new TestHandler({ serveAntiEntropy: true }) });
      const t = transport({ unresponsiveMs: 300, probeIntervalMs: 100 });
      assert.equal(await t.read(p.url, Buffer.from('a'), later()), undefined);
      // Its answer takes as long as the peer's paced store scan: here, forever.
      p.handler.hang.add('digest');
      let failed: unknown;
      t.antiEntropy(p.url, Buffer.from('digest'), later()).catch((err: unknown) => {
        failed = err;
      });
      await sleep(900);
      // Three silence periods passed with only the anti-entropy request waiting: the peer stayed up.
      assert.equal(failed, undefined);
      assert.equal(t.isUp(p.url), true);
      await p.handler.engine.write(valueEntry(Buffer.from('a'), 1n, Buffer.from('x')));
      assert.deepEqual((await t.read(p.url, Buffer.from('a'), later()))?.value, Buffer.from('x'));
      assert.equal(t.peerStatus(p.url).failures, 0);
    });

    test("a pause of this node's event loop past the silence bound (and past the deadline): the answer that waited unread is delivered", async () => {
      const p = await peer();
      const t = transport({ unresponsiveMs: 200, probeIntervalMs: LONG_MS });
      await p.handler.engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
      assert.deepEqual((await t.read(p.url, Buffer.from('k'), later()))?.value, Buffer.from('v'));
      // The peer answers at once; then the loop is blocked for three silence bounds.
      for (const deadlineMs of [LONG_MS, 300]) {
        const undo = pauseAfterNextAnswer(p, 600, 'k');
        try {
          const answer = await t.read(p.url, Buffer.from('k'), Date.now() + deadlineMs);
          assert.deepEqual(answer?.value, Buffer.from('v'), `deadline in ${deadlineMs} ms`);
        } finally {
          undo();
        }
      }
      assert.ok(t.isUp(p.url), 'the peer is not taken for hung');
      assert.equal(t.peerStatus(p.url).failures, 0);
      assert.equal(t.stats().timeouts, 0);
      assert.deepEqual((await t.read(p.url, Buffer.from('k'), later()))?.value, Buffer.from('v'));
    });

    test('forget(): the link closes, requests in flight reject with RINGKV_UNAVAILABLE, probes stop; a later request starts afresh', async () => {
      const p = await peer();
      const t = transport({ probeIntervalMs: 20, quarantineMs: 20 });
      p.handler.hang.add('stuck');
      const inFlight = t.read(p.url, Buffer.from('stuck'), later());
      for (let i = 0; i < 100 && p.handler.calls < 1; i++) await sleep(5);
      t.forget(p.url);
      const err = await rejectsWith(inFlight, 'RINGKV_UNAVAILABLE');
      assert.match(err.message, /forgotten/);
      assert.deepEqual(t.peerStatus(p.url), { state: 'up', failures: 0 });
      // Back in use (say it joined again): a new link.
      await p.handler.engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
      assert.deepEqual((await t.read(p.url, Buffer.from('k'), later()))?.value, Buffer.from('v'));

      // A dead peer is probed every 20 ms until forgotten, then never.
      const dead = `http://127.0.0.1:${await closedPort()}`;
      await rejectsWith(t.read(dead, Buffer.from('k'), later()), 'RINGKV_UNAVAILABLE');
      const failedBefore = t.stats().connectFailures;
      for (let i = 0; i < 100 && t.stats().connectFailures < failedBefore + 2; i++) await sleep(10);
      assert.ok(t.stats().connectFailures >= failedBefore + 2, 'probed while remembered');
      t.forget(dead);
      const attempts = t.stats().connectAttempts;
      await sleep(200);
      assert.equal(t.stats().connectAttempts, attempts, 'no probe once forgotten');
      assert.ok(t.isUp(dead));
    });

    test('close() rejects requests in flight and later calls with RINGKV_CLOSED', async () => {
      const p = await peer();
      p.handler.hang.add('stuck');
      const t = options.create({});
      const inFlight = t.read(p.url, Buffer.from('stuck'), later());
      await sleep(30);
      await t.close();
      await rejectsWith(inFlight, 'RINGKV_CLOSED');
      await rejectsWith(t.read(p.url, Buffer.from('k'), later()), 'RINGKV_CLOSED');
    });
  });
}
