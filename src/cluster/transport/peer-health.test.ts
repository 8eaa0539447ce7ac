import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RingkvError } from '../../util/errors.js';
import { PeerHealth } from './peer-health.js';

const PEER = 'http://127.0.0.1:1';
const refused = new RingkvError('RINGKV_UNAVAILABLE', 'connect ECONNREFUSED');

function health(probe: () => void = () => {}, quarantineMs = 20): PeerHealth {
  return new PeerHealth(PEER, { probeIntervalMs: 10, quarantineMs }, probe);
}

test('a failed peer is refused within the quarantine, tried after it, and waited for while an attempt is under way', () => {
  const h = health();
  h.failed(refused);
  const now = Date.now();
  assert.equal(h.mayTry(now, now + 1000, false), false);
  assert.equal(h.mayTry(now, now + 1000, true), true);
  assert.equal(h.mayTry(now + 25, now + 1000, false), true);
  // A request whose deadline has passed never waits.
  assert.equal(h.mayTry(now + 25, now + 25, true), false);
  h.close();
});

test('a hung peer (last failure a timeout) is refused even with an attempt under way, until it is seen', () => {
  const h = health();
  h.failed(new RingkvError('RINGKV_TIMEOUT', 'sent nothing for 1000 ms'));
  const later = Date.now() + 1000;
  assert.equal(h.mayTry(later, later + 1000, false), false);
  assert.equal(h.mayTry(later, later + 1000, true), false);
  h.seen();
  assert.equal(h.mayTry(later, later + 1000, false), true);
  h.close();
});

test('a leaving peer is not tried by requests, keeps its cause through the closed connection, and is back once recovered', () => {
  const h = health();
  h.left();
  h.failed(refused);
  assert.equal(h.leaving, true);
  const later = Date.now() + 1000;
  assert.equal(h.mayTry(later, later + 1000, false), false);
  // An attempt started by a probe or by its handshake is waited for.
  assert.equal(h.mayTry(later, later + 1000, true), true);
  assert.match(h.unavailable().message, /is leaving/);
  h.recovered();
  assert.equal(h.leaving, false);
  h.failed(refused);
  assert.match(h.unavailable().message, /ECONNREFUSED/);
  h.close();
});

test('refusals are RINGKV_UNAVAILABLE and name the cause', () => {
  const h = health();
  h.failed(new RingkvError('RINGKV_PROTOCOL', 'answered 404 to the upgrade'));
  const err = h.unavailable();
  assert.equal(err.code, 'RINGKV_UNAVAILABLE');
  assert.match(err.message, new RegExp(`Peer ${PEER} is down: answered 404`));
  h.close();
});

test('one probe per interval however many failures, none after recovery or close', async () => {
  let probes = 0;
  const h = health(() => probes++);
  h.failed(refused);
  h.failed(refused);
  h.failed(refused);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(probes, 1);
  h.failed(refused);
  h.recovered();
  h.failed(refused);
  h.close();
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(probes, 1);
});

test('failures counts every failed attempt or lost link, recovery included', () => {
  const h = health();
  assert.equal(h.failures, 0);
  h.failed(refused);
  h.failed(refused);
  h.recovered();
  h.failed(refused);
  assert.equal(h.failures, 3);
  h.close();
});
