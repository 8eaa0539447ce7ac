import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { hash32 } from './hash.js';
import { Ring } from './ring.js';

function urls(count: number, make: (i: number) => string): string[] {
  return Array.from({ length: count }, (_, i) => make(i));
}

/** The ring's definition, written the slow way: sort every point, walk clockwise. */
function naiveReplicas(nodes: readonly string[], vnodes: number, key: Buffer, from: number): string[] {
  const sorted = [...new Set(nodes)].sort();
  const points: { position: number; url: string }[] = [];
  for (const url of sorted) {
    for (let i = 0; i < vnodes; i++) points.push({ position: hash32(Buffer.from(`${url}#${i}`)), url });
  }
  points.sort((a, b) => a.position - b.position || (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
  const h = hash32(key);
  let start = points.findIndex((p) => p.position >= h);
  if (start === -1) start = 0;
  const out: string[] = [];
  for (let step = 0; out.length < from; step++) {
    const url = points[(start + step) % points.length]!.url;
    if (!out.includes(url)) out.push(url);
  }
  return out;
}

/** xorshift32: deterministic keys, so a balance failure reproduces. */
function randomKeys(count: number, seed: number): Buffer[] {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const keys: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.allocUnsafe(4 + (next() % 29));
    for (let j = 0; j < key.length; j++) key[j] = next() & 0xff;
    keys.push(key);
  }
  return keys;
}

const local = urls(5, (i) => `http://127.0.0.1:${8080 + i}`);
const keyArb = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));

describe('Ring', () => {
  test('nodes are sorted and deduplicated', () => {
    const ring = new Ring(['http://c:1', 'http://a:1', 'http://b:1', 'http://a:1'], { vnodesPerNode: 8 });
    assert.deepEqual(ring.nodes, ['http://a:1', 'http://b:1', 'http://c:1']);
  });

  test('placement does not depend on the order the URLs are given in', () => {
    const a = new Ring(local);
    const b = new Ring([...local].reverse());
    const c = new Ring([local[2]!, local[0]!, local[4]!, local[1]!, local[3]!, local[0]!]);
    fc.assert(
      fc.property(keyArb, (key) => {
        const expected = a.replicas(key, local.length);
        assert.deepEqual(b.replicas(key, local.length), expected);
        assert.deepEqual(c.replicas(key, local.length), expected);
      }),
      propertyParams({ numRuns: 500 }),
    );
  });

  test('replicas follow the definition: first distinct nodes clockwise (checked against a naive walk)', () => {
    const nodes = urls(10, (i) => `http://10.0.0.${i + 1}:8080`);
    const ring = new Ring(nodes, { vnodesPerNode: 16 });
    fc.assert(
      fc.property(keyArb, fc.integer({ min: 1, max: nodes.length }), (key, from) => {
        // from > 8 takes the ring's slow path; both must agree with the definition.
        assert.deepEqual(ring.replicas(key, from), naiveReplicas(nodes, 16, key, from));
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  test('prefix property: replicas(k, f) is a prefix of replicas(k, f + 1)', () => {
    const nodes = urls(9, (i) => `http://node-${i}.example:7000`);
    const ring = new Ring(nodes, { vnodesPerNode: 64 });
    fc.assert(
      fc.property(keyArb, fc.integer({ min: 1, max: nodes.length - 1 }), (key, from) => {
        const smaller = ring.replicas(key, from);
        const larger = ring.replicas(key, from + 1);
        assert.equal(smaller.length, from);
        assert.equal(larger.length, from + 1);
        assert.deepEqual(larger.slice(0, from), [...smaller]);
      }),
      propertyParams({ numRuns: 1000 }),
    );
  });

  test('replicas are distinct cluster nodes, for every from = 1..N', () => {
    const ring = new Ring(local);
    for (const key of randomKeys(200, 7)) {
      for (let from = 1; from <= local.length; from++) {
        const replicas = ring.replicas(key, from);
        assert.equal(replicas.length, from);
        assert.equal(new Set(replicas).size, from);
        for (const url of replicas) assert.ok(local.includes(url));
      }
      assert.equal(ring.primary(key), ring.replicas(key, 1)[0]);
    }
  });

  test('answers are frozen and shared between calls', () => {
    const ring = new Ring(local);
    const key = Buffer.from('some key');
    const first = ring.replicas(key, 3);
    assert.ok(Object.isFrozen(first));
    assert.equal(ring.replicas(Buffer.from('some key'), 3), first);
  });

  test('a one-node ring places every key on that node', () => {
    const ring = new Ring(['http://127.0.0.1:8080']);
    for (const key of randomKeys(50, 3)) assert.deepEqual(ring.replicas(key, 1), ['http://127.0.0.1:8080']);
  });

  test('from outside 1..N is a programmer error', () => {
    const ring = new Ring(local, { vnodesPerNode: 8 });
    assert.throws(() => ring.replicas(Buffer.from('k'), 0), { name: 'AssertionError' });
    assert.throws(() => ring.replicas(Buffer.from('k'), local.length + 1), { name: 'AssertionError' });
    assert.throws(() => new Ring([]), { name: 'AssertionError' });
  });

  test('balance: each node is primary for the even share ±10% of 100,000 random keys, 3 to 7 nodes', () => {
    const keys = randomKeys(100_000, 0x5eed);
    const sets: Record<string, (i: number) => string> = {
      'localhost ports': (i) => `http://127.0.0.1:${8080 + i}`,
      'other ports': (i) => `http://127.0.0.1:${19_000 + 7 * i}`,
      'private hosts': (i) => `http://10.1.0.${i + 11}:8080`,
      'host names': (i) => `http://kv-${i + 1}.cluster.internal:9000`,
    };
    for (const [name, make] of Object.entries(sets)) {
      for (let count = 3; count <= 7; count++) {
        const ring = new Ring(urls(count, make));
        const primaries = new Map<string, number>();
        for (const key of keys) {
          const primary = ring.primary(key);
          primaries.set(primary, (primaries.get(primary) ?? 0) + 1);
        }
        const even = keys.length / count;
        assert.equal(primaries.size, count, `${name}, ${count} nodes: every node is a primary`);
        for (const [url, share] of primaries) {
          const deviation = share / even - 1;
          assert.ok(
            Math.abs(deviation) <= 0.1,
            `${name}, ${count} nodes: ${url} holds ${share} keys, ${(deviation * 100).toFixed(1)}% off ${even}`,
          );
        }
      }
    }
  });

  test('primaryShares: add up to 1 and match where keys fall', () => {
    const ring = new Ring(local, { vnodesPerNode: 256 });
    const shares = ring.primaryShares();
    const sum = [...shares.values()].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9, `shares add up to ${sum}`);
    const keys = randomKeys(50_000, 0xface);
    const counted = new Map<string, number>();
    for (const key of keys) counted.set(ring.primary(key), (counted.get(ring.primary(key)) ?? 0) + 1);
    for (const [url, share] of shares) {
      const sampled = (counted.get(url) ?? 0) / keys.length;
      assert.ok(Math.abs(sampled - share) < 0.01, `${url}: share ${share}, sampled ${sampled}`);
    }
  });

  test("tokens: a node placed by another one's token takes exactly its ranges", () => {
    const [a, b, c, d] = local;
    const before = new Ring([a!, b!, c!], { vnodesPerNode: 64 });
    const after = new Ring([a!, b!, d!], { vnodesPerNode: 64, tokens: new Map([[d!, c!]]) });
    for (const key of randomKeys(5_000, 0xbeef)) {
      const expected = before.replicas(key, 3).map((url) => (url === c ? d : url));
      assert.deepEqual([...after.replicas(key, 3)].sort(), [...expected].sort());
      assert.equal(after.primary(key), before.primary(key) === c ? d : before.primary(key));
    }
  });

  test("ranges: a key hashes into a node's ranges exactly when the node is among its first `depth` replicas", () => {
    const ring = new Ring(local, { vnodesPerNode: 128 });
    for (const depth of [1, 3]) {
      for (const url of local) {
        const ranges = ring.ranges(url, depth);
        for (let i = 2; i < ranges.length; i += 2)
          assert.ok(ranges[i - 1]! < ranges[i]!, 'sorted, disjoint, merged');
        for (const key of randomKeys(3000, 0xabc + depth)) {
          const h = hash32(key);
          let inside = false;
          for (let i = 0; i < ranges.length; i += 2) if (h >= ranges[i]! && h < ranges[i + 1]!) inside = true;
          assert.equal(
            inside,
            ring.replicas(key, depth).includes(url),
            `${url} depth ${depth} key hash ${h}`,
          );
        }
      }
    }
    assert.deepEqual(new Ring([local[0]!]).ranges(local[0]!, 1), [0, 2 ** 32], 'one node: everything');
  });
});
