import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PendingById } from './pending-by-id.js';

test('ids are unique among requests in flight; answers to gone requests find nothing', () => {
  const table = new PendingById<{ id: number; n: number }>();
  const live = new Map<number, { id: number; n: number }>();
  let seed = 11;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const gone: number[] = [];
  for (let n = 0; n < 5000; n++) {
    if (live.size > 0 && random(3) === 0) {
      // Answer (or time out) a random request in flight.
      const ids = [...live.keys()];
      const id = ids[random(ids.length)]!;
      assert.equal(table.delete(live.get(id)!), true);
      assert.equal(table.delete(live.get(id)!), false, 'a second removal finds nothing');
      live.delete(id);
      gone.push(id);
    } else {
      // Bursts grow the table past several doublings.
      const id = table.nextId();
      assert.notEqual(id, 0);
      assert.equal(live.has(id), false, `id ${id} is in flight already`);
      const item = { id, n };
      table.add(item);
      live.set(id, item);
    }
    assert.equal(table.size, live.size);
  }
  for (const [id, item] of live) assert.equal(table.get(id), item);
  for (const id of gone.slice(-200)) if (!live.has(id)) assert.equal(table.get(id), undefined);
  const all = table.takeAll();
  assert.equal(all.length, live.size);
  assert.equal(table.size, 0);
  for (const item of all) assert.equal(table.get(item.id), undefined);
});
