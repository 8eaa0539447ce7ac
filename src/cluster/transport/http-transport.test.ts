import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { closedPort, pauseAfterNextAnswer, sleep, startPeer } from '../../../test/support/transport-peer.js';
import { transportSuite } from '../../../test/support/transport-suite.js';
import { isRingkvError } from '../../util/errors.js';
import { HttpTransport } from './http-transport.js';

transportSuite('HttpTransport', { create: (options) => new HttpTransport(options) });

test('HttpTransport: a request that waits for a probe still ends at its own deadline', async () => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  // Probes time out after 4 probe intervals: 4 s, far past the request's deadline below.
  const t = new HttpTransport({ probeIntervalMs: 1000, quarantineMs: 1 });
  const held: net.Socket[] = [];
  const hung = net.createServer((socket) => {
    held.push(socket);
  });
  try {
    await assert.rejects(t.read(url, Buffer.from('k'), Date.now() + 60_000));
    assert.equal(t.isUp(url), false);
    // The peer's port now accepts and never answers: the probe this request starts hangs.
    await new Promise<void>((resolve) => hung.listen(port, '127.0.0.1', () => resolve()));
    await sleep(5);
    const err = await t.read(url, Buffer.from('k'), Date.now() + 100).catch((e: unknown) => e);
    assert.ok(isRingkvError(err, 'RINGKV_TIMEOUT'), String(err));
  } finally {
    await t.close();
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => (hung.listening ? hung.close(() => resolve()) : resolve()));
  }
});

test('HttpTransport: a connection cut mid-answer fails the request at once with RINGKV_UNAVAILABLE and marks the peer down', async () => {
  // Answers the head and part of the body, then cuts the connection.
  const server = net.createServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\nabc');
      setTimeout(() => socket.destroy(), 20);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const downs: string[] = [];
  const t = new HttpTransport({ probeIntervalMs: 60_000, onPeerDown: (peer) => downs.push(peer) });
  try {
    const startedMs = Date.now();
    const err = await t.read(url, Buffer.from('k'), Date.now() + 10_000).catch((e: unknown) => e);
    assert.ok(isRingkvError(err, 'RINGKV_UNAVAILABLE'), String(err));
    assert.ok(Date.now() - startedMs < 2000, `failed after ${Date.now() - startedMs} ms`);
    assert.equal(t.isUp(url), false);
    assert.deepEqual(downs, [url]);
    assert.equal(t.stats().timeouts, 0);
  } finally {
    await t.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("HttpTransport: a pause of this node's event loop past the probe's timeout: the answer that waited unread brings the peer back", async () => {
  const p = await startPeer();
  // Probes time out after 4 probe intervals: 200 ms.
  const t = new HttpTransport({ probeIntervalMs: 50 });
  const undo = pauseAfterNextAnswer(p, 600);
  try {
    await t.connect([p.url]);
    assert.ok(t.isUp(p.url), 'the probe was not given up as timed out');
    assert.equal(t.stats().connectFailures, 0);
    assert.equal(await t.read(p.url, Buffer.from('k'), Date.now() + 5000), undefined);
  } finally {
    undo();
    await t.close();
    await p.close();
  }
});
