import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeProof, ProofChecker } from './auth.js';

const url = 'http://127.0.0.1:8081';

function checker(now: { ms: number }, secret: string | undefined): ProofChecker {
  return new ProofChecker({
    secret,
    selfUrl: url,
    windowMs: 30_000,
    nonceCacheMax: 100,
    nowMs: () => now.ms,
  });
}

test('a fresh proof made with the secret for this node is accepted once per handshake', () => {
  const now = { ms: 1_700_000_000_000 };
  const c = checker(now, 's3cret');
  const proof = makeProof('s3cret', url, { nowMs: now.ms });
  assert.ok(!proof.includes('s3cret'), 'the secret itself never travels');
  assert.equal(c.check(proof, undefined, true), 'accepted');
  assert.equal(c.check(proof, undefined, true), 'replayed');
  // Reusable proofs (plain-HTTP variant) are accepted again within the window.
  const reusable = makeProof('s3cret', url, { nowMs: now.ms });
  assert.equal(c.check(reusable, undefined, false), 'accepted');
  assert.equal(c.check(reusable, undefined, false), 'accepted');
});

test('missing, malformed, wrong-secret, other-node and stale proofs are refused', () => {
  const now = { ms: 1_700_000_000_000 };
  const c = checker(now, 's3cret');
  assert.equal(c.check(undefined, undefined, true), 'missing');
  assert.equal(c.check('', undefined, true), 'missing');
  assert.equal(c.check('garbage', undefined, true), 'invalid');
  assert.equal(c.check(makeProof('other', url, { nowMs: now.ms }), undefined, true), 'invalid');
  assert.equal(
    c.check(makeProof('s3cret', 'http://127.0.0.1:8082', { nowMs: now.ms }), undefined, true),
    'invalid',
  );
  assert.equal(c.check(makeProof('s3cret', url, { nowMs: now.ms - 31_000 }), undefined, true), 'stale');
  assert.equal(c.check(makeProof('s3cret', url, { nowMs: now.ms + 31_000 }), undefined, false), 'stale');
  assert.equal(c.check(makeProof('s3cret', url, { nowMs: now.ms - 29_000 }), undefined, true), 'accepted');
  const reusable = makeProof('s3cret', url, { nowMs: now.ms });
  assert.equal(c.check(reusable, undefined, false), 'accepted');
  now.ms += 31_000;
  assert.equal(c.check(reusable, undefined, false), 'stale', 'a cached proof expires with its window');
});

test('without selfUrl the origin comes from the Host header; without a secret all is accepted', () => {
  const now = { ms: 1_700_000_000_000 };
  const byHost = new ProofChecker({ secret: 'k', windowMs: 30_000, nonceCacheMax: 10, nowMs: () => now.ms });
  assert.equal(byHost.check(makeProof('k', url, { nowMs: now.ms }), '127.0.0.1:8081', true), 'accepted');
  assert.equal(byHost.check(makeProof('k', url, { nowMs: now.ms }), '127.0.0.1:9999', true), 'invalid');
  assert.equal(byHost.check(makeProof('k', url, { nowMs: now.ms }), undefined, true), 'invalid');
  assert.equal(checker(now, undefined).check(undefined, undefined, true), 'accepted');
});

test('the nonce cache stays bounded: expired nonces are forgotten, a flood is refused', () => {
  const now = { ms: 1_700_000_000_000 };
  const c = new ProofChecker({
    secret: 'k',
    selfUrl: url,
    windowMs: 1000,
    nonceCacheMax: 3,
    nowMs: () => now.ms,
  });
  for (let i = 0; i < 3; i++)
    assert.equal(c.check(makeProof('k', url, { nowMs: now.ms }), undefined, true), 'accepted');
  assert.equal(c.check(makeProof('k', url, { nowMs: now.ms }), undefined, true), 'replayed');
  now.ms += 1001;
  assert.equal(c.check(makeProof('k', url, { nowMs: now.ms }), undefined, true), 'accepted');
});
