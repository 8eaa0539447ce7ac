import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineTimer, type Expirable, expireAt } from './deadlines.js';

function item(deadlineMs: number, expired: number[]): Expirable {
  return expireAt(deadlineMs, () => expired.push(deadlineMs));
}

test('items expire once their deadline passed, never before, and removed ones never', async () => {
  const now = { ms: 0 };
  const expired: number[] = [];
  let ticks = 0;
  const timer = new DeadlineTimer({ resolutionMs: 5, nowMs: () => now.ms, onTick: () => ticks++ });
  const a = item(100, expired);
  const b = item(200, expired);
  const c = item(300, expired);
  for (const i of [a, b, c]) timer.add(i);
  assert.equal(timer.size, 3);
  for (let i = 0; i < 50 && ticks < 3; i++) await sleep(5);
  assert.deepEqual(expired, [], 'nothing is due at time 0');

  now.ms = 150;
  const seen = ticks;
  for (let i = 0; i < 50 && ticks < seen + 2; i++) await sleep(5);
  assert.deepEqual(expired, [100]);
  timer.remove(b);
  assert.equal(b.bucket, -1);
  now.ms = 1000;
  for (let i = 0; i < 50 && expired.length < 2; i++) await sleep(5);
  assert.deepEqual(expired, [100, 300]);
  assert.equal(timer.size, 0);
  // The timer stops once empty: no further ticks.
  const stopped = ticks;
  await sleep(30);
  assert.ok(ticks <= stopped + 1);
  timer.close();
});

test('the wheel: deadlines over several revolutions, removals from any place in a list, jumps of the clock', async () => {
  const resolutionMs = 5;
  const revolutionMs = 1024 * resolutionMs;
  const now = { ms: 1_000_000 };
  let ticks = 0;
  const timer = new DeadlineTimer({ resolutionMs, nowMs: () => now.ms, onTick: () => ticks++ });
  const waitTick = async (): Promise<void> => {
    const seen = ticks;
    for (let i = 0; i < 100 && ticks === seen; i++) await sleep(5);
    assert.ok(ticks > seen, 'the timer ticks while items wait');
  };
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const expired = new Map<Expirable, number>();
  const removed = new Set<Expirable>();
  const items: Expirable[] = [];
  for (let i = 0; i < 600; i++) {
    // Some already due, most within three revolutions, many sharing slots.
    const it: Expirable = expireAt(now.ms - 50 + random(3 * revolutionMs), () =>
      expired.set(it, (expired.get(it) ?? 0) + 1),
    );
    items.push(it);
    timer.add(it);
  }
  for (const it of items) if (random(5) === 0) removed.add(it);
  for (const it of removed) timer.remove(it);
  assert.equal(timer.size, items.length - removed.size);
  for (let step = 0; step < 12 && timer.size > 0; step++) {
    // Jumps from a few buckets to more than a revolution.
    now.ms += step % 4 === 3 ? revolutionMs + 7 * resolutionMs : 1 + random(revolutionMs / 2);
    await waitTick();
    const dueBucket = Math.floor(now.ms / resolutionMs);
    for (const it of items) {
      const due = !removed.has(it) && Math.ceil(it.deadlineMs / resolutionMs) <= dueBucket;
      assert.equal(expired.get(it) ?? 0, due ? 1 : 0, `deadline ${it.deadlineMs} at ${now.ms}`);
    }
  }
  assert.equal(timer.size, 0);
  for (const it of items) assert.equal(it.bucket, -1);
  timer.close();
});

test('a wall clock that steps back: items added afterwards expire by the new time', async () => {
  const resolutionMs = 5;
  const now = { ms: 1_000_000 };
  let ticks = 0;
  const timer = new DeadlineTimer({ resolutionMs, nowMs: () => now.ms, onTick: () => ticks++ });
  const expired: number[] = [];
  const early = item(now.ms + 100, expired);
  timer.add(early);
  for (let i = 0; i < 100 && ticks < 2; i++) await sleep(5);
  now.ms -= 60_000; // the clock steps back a minute
  const seen = ticks;
  for (let i = 0; i < 100 && ticks < seen + 2; i++) await sleep(5);
  const late = item(now.ms + 100, expired);
  timer.add(late);
  now.ms += 150;
  for (let i = 0; i < 100 && expired.length === 0; i++) await sleep(5);
  assert.deepEqual(
    expired,
    [now.ms - 50],
    'the item added after the step expires 100 ms after it, by the new clock',
  );
  timer.close();
});

test('close() unfiles what it drops: a later remove() is a no-op, and the timer works on', async () => {
  const now = { ms: 0 };
  const expired: number[] = [];
  const timer = new DeadlineTimer({ resolutionMs: 5, nowMs: () => now.ms });
  const dropped = [item(100, expired), item(100, expired), item(200, expired)];
  for (const i of dropped) timer.add(i);
  timer.close();
  for (const i of dropped) {
    assert.equal(i.bucket, -1);
    timer.remove(i);
  }
  assert.equal(timer.size, 0);
  const next = item(150, expired);
  timer.add(next);
  assert.equal(timer.size, 1);
  now.ms = 1000;
  for (let i = 0; i < 100 && expired.length === 0; i++) await sleep(5);
  assert.deepEqual(expired, [150], 'only the item added after close() expires');
  assert.equal(timer.size, 0);
  timer.close();
});

test('a deadline that is not a number expires on the next tick', async () => {
  const now = { ms: 0 };
  const expired: number[] = [];
  const timer = new DeadlineTimer({ resolutionMs: 5, nowMs: () => now.ms });
  timer.add(item(Number.NaN, expired));
  now.ms = 10;
  for (let i = 0; i < 100 && expired.length === 0; i++) await sleep(5);
  assert.equal(expired.length, 1);
  assert.equal(timer.size, 0);
  timer.close();
});

test('a late tick (the loop was blocked) expires after the I/O that arrived meanwhile, and runningMs() leaves the pause out', async () => {
  const timer = new DeadlineTimer({ resolutionMs: 10 });
  // An echo server that blocks the (shared) loop right after answering: the echo waits unread.
  const server = net.createServer((socket) => {
    socket.on('data', (data) => {
      socket.write(data);
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // the event loop is blocked
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  try {
    const order: string[] = [];
    const read = new Promise<void>((resolve) =>
      client.once('data', () => {
        order.push('read');
        resolve();
      }),
    );
    const expired = new Promise<void>((resolve) =>
      timer.add(
        expireAt(Date.now() + 50, () => {
          order.push('expired');
          resolve();
        }),
      ),
    );
    const startedMs = Date.now();
    client.write('x');
    await Promise.all([read, expired]);
    assert.deepEqual(
      order,
      ['read', 'expired'],
      'the answer is read before the deadline that passed meanwhile expires',
    );
    const pausedMs = Date.now() - timer.runningMs();
    assert.ok(pausedMs >= 250 && pausedMs <= Date.now() - startedMs, `pause left out: ${pausedMs} ms`);
  } finally {
    timer.close();
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a busy loop (every tick a few turns late) is not taken for pauses: runningMs() keeps up with the clock', async () => {
  const timer = new DeadlineTimer({ resolutionMs: 10 });
  // An item far away keeps the timer ticking.
  timer.add(expireAt(Date.now() + 60_000, () => {}));
  try {
    const startedMs = Date.now();
    const runningAtStart = timer.runningMs();
    // 20 turns of 30 ms each: every tick comes 20-30 ms late.
    for (let turn = 0; turn < 20; turn++) {
      const until = Date.now() + 30;
      while (Date.now() < until) {
        // a busy turn
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const wallMs = Date.now() - startedMs;
    const pausedMs = wallMs - (timer.runningMs() - runningAtStart);
    // Before, each late tick counted: about two thirds of the time went missing.
    assert.ok(pausedMs < wallMs / 2, `${pausedMs} of ${wallMs} ms taken for pauses`);
  } finally {
    timer.close();
  }
});
