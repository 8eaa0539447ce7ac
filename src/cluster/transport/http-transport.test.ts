import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { closedPort, sleep } from '../../../test/support/transport-peer.js';
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
