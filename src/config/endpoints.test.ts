import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRingkvError } from '../util/errors.js';
import { type AddressLookup, canonicalAddress, checkDistinctEndpoints } from './endpoints.js';

/** A resolver from a table; names not in it do not resolve. */
function table(entries: Record<string, readonly string[]>): AddressLookup {
  return async (host) => {
    const addresses = entries[host];
    if (addresses === undefined)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses;
  };
}

const lookup = table({
  localhost: ['127.0.0.1', '::1'],
  'node-a': ['10.0.0.5'],
  'node-a-alias': ['10.0.0.6', '10.0.0.5'],
  'node-b': ['10.0.0.7'],
});

function refusedAs(message: string): (err: unknown) => boolean {
  return (err) => isRingkvError(err, 'RINGKV_CONFIG') && err.message === message;
}

describe('checkDistinctEndpoints', () => {
  it('names the flag it checks: --join or --replace against this node', async () => {
    await assert.rejects(
      checkDistinctEndpoints(['http://127.0.0.1:8080', 'http://localhost:8080'], { lookup, flag: '--join' }),
      refusedAs(
        'Bad --join: http://127.0.0.1:8080 and http://localhost:8080 are the same node (both reach 127.0.0.1 port 8080)',
      ),
    );
  });

  it('refuses two spellings of one endpoint, naming both and what they reach', async () => {
    for (const [urls, reach] of [
      [['http://127.0.0.1:8080', 'http://localhost:8080'], '127.0.0.1 port 8080'],
      [['http://[::1]:8080', 'http://localhost:8080'], '::1 port 8080'],
      [['http://127.0.0.1:8080', 'http://[::ffff:7f00:1]:8080'], '127.0.0.1 port 8080'],
      [['http://0.0.0.0:8080', 'http://127.0.0.1:8080'], '127.0.0.1 port 8080'],
      [['http://[::]:8080', 'http://[::1]:8080'], '::1 port 8080'],
      [['http://node-a:80', 'http://node-b:80', 'http://node-a-alias:80'], '10.0.0.5 port 80'],
      [['http://10.0.0.5:9000', 'http://node-a:9000'], '10.0.0.5 port 9000'],
    ] as const) {
      await assert.rejects(
        checkDistinctEndpoints(urls, { lookup }),
        refusedAs(`Bad --cluster: ${urls[0]} and ${urls.at(-1)} are the same node (both reach ${reach})`),
        urls.join(','),
      );
    }
  });

  it('takes distinct endpoints: other ports, other addresses, loopback addresses apart', async () => {
    for (const urls of [
      ['http://127.0.0.1:8080'],
      ['http://127.0.0.1:8080', 'http://127.0.0.1:8081', 'http://localhost:8082'],
      ['http://127.0.0.1:8080', 'http://127.0.0.2:8080'],
      ['http://127.0.0.1:8080', 'http://[::1]:8080'],
      ['http://node-a:80', 'http://node-b:80'],
    ]) {
      await checkDistinctEndpoints(urls, { lookup });
    }
  });

  it('compares a name that does not resolve, or not in time, by its spelling alone', async () => {
    await checkDistinctEndpoints(['http://127.0.0.1:8080', 'http://not-in-dns-yet:8080'], { lookup });
    const never: AddressLookup = () => new Promise(() => {});
    const startedAt = Date.now();
    await checkDistinctEndpoints(['http://127.0.0.1:8080', 'http://slow-dns:8080'], {
      lookup: never,
      timeoutMs: 50,
    });
    assert.ok(Date.now() - startedAt < 2_000, 'bounded by timeoutMs');
  });

  it('looks up names only, and only when there are two nodes to tell apart', async () => {
    const asked: string[] = [];
    const recording: AddressLookup = async (host) => {
      asked.push(host);
      return lookup(host);
    };
    await checkDistinctEndpoints(['http://localhost:8080'], { lookup: recording });
    await checkDistinctEndpoints(['http://127.0.0.1:8080', 'http://[::1]:8081'], { lookup: recording });
    assert.deepEqual(asked, []);
  });
});

describe('canonicalAddress', () => {
  it('spells each address one way', () => {
    assert.equal(canonicalAddress('::FFFF:127.0.0.1'), '127.0.0.1');
    assert.equal(canonicalAddress('::ffff:a00:5'), '10.0.0.5');
    assert.equal(canonicalAddress('0.0.0.0'), '127.0.0.1');
    assert.equal(canonicalAddress('::'), '::1');
    assert.equal(canonicalAddress('FE80::1'), 'fe80::1');
  });
});
