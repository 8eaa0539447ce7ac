import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ring } from '../ring/index.js';
import { sharedBy } from './scan.js';

const NODES = ['http://127.0.0.1:7001', 'http://127.0.0.1:7002', 'http://127.0.0.1:7003'];

describe('sharedBy', () => {
  const ring = new Ring(NODES, { vnodesPerNode: 64 });
  const keys = Array.from({ length: 2000 }, (_, i) => Buffer.from(`key-${i}`));

  it('agrees with the replica lists for every replication factor', () => {
    for (let factor = 1; factor <= NODES.length; factor++) {
      const scope = { ring, self: NODES[0]!, peer: NODES[2]!, replicationFactor: factor, leafBits: 4 };
      let shared = 0;
      for (const key of keys) {
        const replicas = ring.replicas(key, factor);
        const expected = replicas.includes(scope.self) && replicas.includes(scope.peer);
        assert.equal(sharedBy(scope, key), expected, `factor ${factor}, ${key}`);
        if (expected) shared++;
      }
      // Factor 1 shares nothing between two nodes; a factor covering the ring shares everything.
      if (factor === 1) assert.equal(shared, 0);
      if (factor === NODES.length) assert.equal(shared, keys.length);
      if (factor === 2) assert.ok(shared > 0 && shared < keys.length, `factor 2 shared ${shared}`);
    }
  });
});
