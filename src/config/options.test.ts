import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRingkvError } from '../util/errors.js';
import { DEFAULT_BLOCK_COMPRESSION } from './compression.js';
import { limits } from './limits.js';
import { clockOffsetFromEnv, hintHandoffIntervalFromEnv, nodeEnvSettings, serveOptions } from './options.js';

const base = { url: 'http://127.0.0.1:8080', data: '/tmp/node' };

describe('serveOptions', () => {
  it('fills defaults from limits and freezes the result', () => {
    const options = serveOptions(base);
    assert.deepEqual(options, {
      url: 'http://127.0.0.1:8080',
      host: '127.0.0.1',
      port: 8080,
      dataDir: '/tmp/node',
      cluster: ['http://127.0.0.1:8080'],
      sync: true,
      antiEntropyIntervalMs: limits.antiEntropyIntervalMs,
      keyBytesMax: 1024,
      valueBytesMax: 8 * 1024 * 1024,
      memtableBytesMax: limits.memtableBytesMax,
      blockCacheBytes: limits.blockCacheBytes,
      compression: DEFAULT_BLOCK_COMPRESSION,
      requestTimeoutMs: 1000,
      clusterSecret: undefined,
      clockSkewMaxMs: limits.clockSkewMaxMs,
      logLevel: 'info',
      logFormat: undefined,
      slowRequestMs: limits.slowRequestMs,
      join: undefined,
      replace: undefined,
    });
    assert.ok(Object.isFrozen(options));
    assert.ok(Object.isFrozen(options.cluster));
  });

  it('reads every flag', () => {
    const options = serveOptions({
      url: 'http://LOCALHOST:9000/',
      data: 'd',
      cluster: 'http://127.0.0.1:9001, http://localhost:9000',
      sync: 'off',
      'anti-entropy-interval': '0',
      'max-key-bytes': '16',
      'max-value-bytes': '4096',
      'memtable-bytes': '65536',
      'block-cache-bytes': '0',
      compression: 'deflate',
      'request-timeout': '250',
      'cluster-secret': 's3cret',
      'max-clock-skew': '250',
      'log-level': 'debug',
      'log-format': 'pretty',
      'slow-request': '0',
    });
    assert.equal(options.url, 'http://localhost:9000');
    assert.deepEqual(options.cluster, ['http://127.0.0.1:9001', 'http://localhost:9000']);
    assert.deepEqual(
      [options.sync, options.antiEntropyIntervalMs, options.keyBytesMax, options.valueBytesMax],
      [false, 0, 16, 4096],
    );
    assert.deepEqual(
      [options.memtableBytesMax, options.blockCacheBytes, options.requestTimeoutMs, options.clusterSecret],
      [65536, 0, 250, 's3cret'],
    );
    assert.equal(options.clockSkewMaxMs, 250);
    assert.equal(options.compression, 'deflate');
    assert.deepEqual([options.logLevel, options.logFormat, options.slowRequestMs], ['debug', 'pretty', 0]);
  });

  it('takes values up to 256 MiB on a single node, and in a cluster only what one internode frame carries', () => {
    const big = String(100 * 1024 * 1024);
    assert.equal(serveOptions({ ...base, 'max-value-bytes': big }).valueBytesMax, 100 * 1024 * 1024);
    const cluster = { ...base, cluster: 'http://127.0.0.1:8080,http://127.0.0.1:8081' };
    const most = limits.internodeFrameBytesMax - limits.keyBytesHardMax - 64;
    assert.equal(serveOptions({ ...cluster, 'max-value-bytes': String(most) }).valueBytesMax, most);
    for (const flags of [
      { ...cluster, 'max-value-bytes': String(most + 1) },
      { ...base, join: 'http://127.0.0.1:8081', 'max-value-bytes': big },
    ]) {
      assert.throws(
        () => serveOptions(flags),
        (err) =>
          isRingkvError(err, 'RINGKV_CONFIG') &&
          err.message ===
            `Bad --max-value-bytes: at most ${most} in a cluster (a value crosses to its replicas in one internode frame)`,
      );
    }
  });

  it('refuses an unknown log level, log format or codec, naming the choices', () => {
    for (const [flag, value] of [
      ['log-level', 'verbose'],
      ['log-format', 'text'],
      ['log-level', ''],
      ['compression', 'zstd'],
      ['compression', 'LZ4'],
      ['compression', ''],
    ] as const) {
      assert.throws(
        () => serveOptions({ ...base, [flag]: value }),
        (err) => isRingkvError(err, 'RINGKV_CONFIG') && err.message.startsWith(`Bad --${flag}: expected `),
      );
    }
  });

  it('reads the clock offset knob from the environment', () => {
    assert.equal(clockOffsetFromEnv({}), 0);
    assert.equal(clockOffsetFromEnv({ RINGKV_CLOCK_OFFSET_MS: '1000' }), 1000);
    assert.equal(clockOffsetFromEnv({ RINGKV_CLOCK_OFFSET_MS: '-250' }), -250);
    for (const bad of ['1.5', 'soon', '99999999', '-0x10']) {
      assert.throws(
        () => clockOffsetFromEnv({ RINGKV_CLOCK_OFFSET_MS: bad }),
        (err) => isRingkvError(err, 'RINGKV_CONFIG'),
      );
    }
  });

  it('reads RINGKV_HINT_HANDOFF_INTERVAL_MS (tests only), refusing what is not a whole positive ms count', () => {
    assert.equal(hintHandoffIntervalFromEnv({}), limits.hintHandoffIntervalMs);
    assert.equal(hintHandoffIntervalFromEnv({ RINGKV_HINT_HANDOFF_INTERVAL_MS: '60000' }), 60_000);
    for (const bad of ['0', '-5', '1.5', 'later', '3600001']) {
      assert.throws(
        () => hintHandoffIntervalFromEnv({ RINGKV_HINT_HANDOFF_INTERVAL_MS: bad }),
        (err) => isRingkvError(err, 'RINGKV_CONFIG'),
      );
    }
  });

  it('refuses a switch in the environment set to a value it does not take, rather than taking the default', () => {
    const taken = {
      RINGKV_HTTP_FAST_PATH: 'off',
      RINGKV_INTERNODE: 'http',
      RINGKV_NATIVE: 'on',
      RINGKV_INVARIANTS: '0',
    };
    assert.equal(nodeEnvSettings(taken).clockOffsetMs, 0);
    assert.equal(nodeEnvSettings({ RINGKV_NATIVE: '', RINGKV_INTERNODE: 'binary' }).clockOffsetMs, 0);
    for (const [name, bad, expected] of [
      ['RINGKV_HTTP_FAST_PATH', 'false', 'on or off'],
      ['RINGKV_INTERNODE', 'HTTP', 'binary or http'],
      ['RINGKV_NATIVE', '0', 'on or off'],
      ['RINGKV_INVARIANTS', 'true', '0 or 1'],
    ] as const) {
      assert.throws(
        () => nodeEnvSettings({ ...taken, [name]: bad }),
        (err) =>
          isRingkvError(err, 'RINGKV_CONFIG') &&
          err.message === `Bad ${name}: expected ${expected}, got ${JSON.stringify(bad)}`,
      );
    }
  });

  const refused: [string, Record<string, string>][] = [
    ['no url', { data: 'd' }],
    ['no data', { url: base.url }],
    ['a url that is not one', { ...base, url: '127.0.0.1:8080' }],
    ['https', { ...base, url: 'https://127.0.0.1:8080' }],
    ['a path', { ...base, url: 'http://127.0.0.1:8080/x' }],
    ['port 0', { ...base, url: 'http://127.0.0.1:0' }],
    ['credentials', { ...base, url: 'http://u:p@127.0.0.1:8080' }],
    ['a cluster without this node', { ...base, cluster: 'http://127.0.0.1:8081' }],
    ['a cluster listing a node twice', { ...base, cluster: `${base.url},http://127.0.0.1:8080/` }],
    ['an empty cluster entry', { ...base, cluster: `${base.url},` }],
    ['sync yes', { ...base, sync: 'yes' }],
    ['a negative interval', { ...base, 'anti-entropy-interval': '-1' }],
    ['a fractional size', { ...base, 'max-value-bytes': '1.5' }],
    ['a zero key limit', { ...base, 'max-key-bytes': '0' }],
    ['a key limit past the format', { ...base, 'max-key-bytes': '65536' }],
    ['a zero request timeout', { ...base, 'request-timeout': '0' }],
    ['an empty secret', { ...base, 'cluster-secret': '' }],
    [
      'a --replace that is the --join member',
      { ...base, join: 'http://127.0.0.1:8081', replace: 'http://127.0.0.1:8081/' },
    ],
    ['a clock skew past a minute', { ...base, 'max-clock-skew': '60001' }],
  ];
  for (const [name, flags] of refused) {
    it(`refuses ${name} with a one-line RINGKV_CONFIG`, () => {
      assert.throws(
        () => serveOptions(flags),
        (err) =>
          isRingkvError(err, 'RINGKV_CONFIG') && !err.message.includes('\n') && err.message.length < 200,
      );
    });
  }
});
