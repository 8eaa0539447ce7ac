import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ABSENT, History } from './history.js';

/** A read of `key` invoked now; answer() completes it with what it returned. */
function reading(history: History, key: string) {
  const invokeSeq = history.tick();
  return { answer: (value: string | undefined) => history.completeRead(key, invokeSeq, value, 'n0') };
}

test('history: a read after an acknowledged write sees it, not what it replaced', () => {
  const h = new History();
  assert.equal(reading(h, 'k').answer(undefined), undefined, 'the initial state: absent');
  const first = h.invokeWrite('k', 'v1');
  h.acknowledge(first);
  const second = h.invokeWrite('k', 'v2');
  h.acknowledge(second);
  assert.equal(reading(h, 'k').answer('v2'), undefined);
  const stale = reading(h, 'k').answer('v1');
  assert.match(stale?.reason ?? '', /superseded/);
  assert.deepEqual(stale?.allowed, ['v2']);
  assert.match(reading(h, 'k').answer(undefined)?.reason ?? '', /absent/);
});

test('history: a write in flight during the read may or may not be seen', () => {
  const h = new History();
  h.acknowledge(h.invokeWrite('k', 'v1'));
  const read = reading(h, 'k');
  const concurrent = h.invokeWrite('k', 'v2');
  assert.equal(read.answer('v2'), undefined, 'invoked before the read answered');
  h.acknowledge(concurrent);
  const overlapping = reading(h, 'k');
  h.acknowledge(h.invokeWrite('k', 'v3'));
  assert.equal(overlapping.answer('v2'), undefined, 'v3 was not acknowledged before the read began');
});

test('history: an indeterminate write may surface at any later time; a delete reads as absent', () => {
  const h = new History();
  const failed = h.invokeWrite('k', 'lost-maybe');
  h.abandon(failed, 'failed');
  h.acknowledge(h.invokeWrite('k', 'v2'));
  assert.equal(reading(h, 'k').answer('lost-maybe'), undefined, 'its version may beat v2');
  h.acknowledge(h.invokeWrite('k', undefined));
  assert.equal(reading(h, 'k').answer(undefined), undefined);
  assert.match(reading(h, 'k').answer('v2')?.reason ?? '', /superseded/);
  assert.deepEqual(reading(h, 'k').answer('v2')?.allowed, ['lost-maybe', ABSENT]);
});

test('history: values never written, or written after the read answered, are violations', () => {
  const h = new History();
  assert.match(reading(h, 'k').answer('junk')?.reason ?? '', /never written/);
  h.acknowledge(h.invokeWrite('other', 'o1'));
  assert.match(reading(h, 'k').answer('o1')?.reason ?? '', /never written to this key/);
  const early = h.tick();
  const late = h.invokeWrite('k', 'v1');
  h.acknowledge(late);
  const violation = h.check({
    key: 'k',
    invokeSeq: early,
    completeSeq: early + 1,
    value: 'v1',
    coordinator: 'n0',
  });
  assert.match(violation?.reason ?? '', /only after the read answered/);
});
