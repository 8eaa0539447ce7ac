import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestHandler } from '../../../test/support/transport-peer.js';
import { valueEntry } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import { SimTransport } from './sim-transport.js';

const A = 'http://sim-a:1';

async function fates(seed: number): Promise<string[]> {
  const handler = new TestHandler();
  const t = new SimTransport(new Map([[A, handler]]), { seed, delayMsMax: 3, lossRate: 0.3 });
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) =>
      t.write(A, valueEntry(Buffer.from(`k${i}`), 1n, Buffer.from('v')), Date.now() + 100),
    ),
  );
  await t.close();
  return results.map((r) =>
    r.status === 'fulfilled' ? 'ok' : isRingkvError(r.reason) ? r.reason.code : 'other',
  );
}

test('SimTransport: the same seed gives the same losses; losses time out', async () => {
  const first = await fates(42);
  assert.deepEqual(await fates(42), first);
  assert.ok(first.includes('ok') && first.includes('RINGKV_TIMEOUT'), first.join(','));
  assert.ok(first.every((f) => f === 'ok' || f === 'RINGKV_TIMEOUT'));
  assert.notDeepEqual(await fates(7), first);
});

test('SimTransport: entries travel encoded; down peers fail at once', async () => {
  const handler = new TestHandler();
  const t = new SimTransport(new Map([[A, handler]]), { seed: 1 });
  const entry = valueEntry(Buffer.from('k'), 9n, Buffer.from('value'));
  await t.write(A, entry, Date.now() + 1000);
  const stored = await handler.engine.get(Buffer.from('k'));
  assert.deepEqual(stored, entry);
  assert.notEqual(stored?.value, entry.value, 'the replica holds its own copy');
  assert.deepEqual(await t.read(A, Buffer.from('k'), Date.now() + 1000), entry);
  assert.deepEqual(await t.scan(A, Buffer.from(''), undefined, 10, Date.now() + 1000), {
    entries: [entry],
    more: false,
  });
  t.setDown(A, true);
  assert.equal(t.isUp(A), false);
  await assert.rejects(t.read(A, Buffer.from('k'), Date.now() + 60_000), { code: 'RINGKV_UNAVAILABLE' });
  t.setDown(A, false);
  assert.deepEqual(await t.read(A, Buffer.from('k'), Date.now() + 1000), entry);
  await t.close();
});

test('SimTransport: anti-entropy bodies travel as copies; a handler without it answers RINGKV_BAD_REQUEST', async () => {
  const serving = new TestHandler({ serveAntiEntropy: true });
  const B = 'http://sim-b:1';
  const t = new SimTransport(
    new Map([
      [A, serving],
      [B, new TestHandler()],
    ]),
    { seed: 3 },
  );
  const body = Buffer.from('digest request');
  const answer = await t.antiEntropy(A, body, Date.now() + 1000);
  assert.deepEqual(answer, Buffer.from('answer:digest request'));
  assert.deepEqual(serving.antiEntropyBodies, [body]);
  assert.notEqual(serving.antiEntropyBodies[0], body, 'the handler got its own copy');
  await assert.rejects(t.antiEntropy(B, body, Date.now() + 1000), { code: 'RINGKV_BAD_REQUEST' });
  await t.close();
});
