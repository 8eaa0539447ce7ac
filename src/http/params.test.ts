import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../test/support/property.js';
import { limits as defaults } from '../config/limits.js';
import { type ErrorCode, isRingkvError } from '../util/errors.js';
import {
  decodeComponent,
  parseEntityParams,
  parseHealthParams,
  parseRangeParams,
  pathOf,
  positiveInteger,
  quorum,
} from './params.js';

const limits = { keyBytesMax: 16, clusterSize: 5 };

function rejectsWith(code: ErrorCode, fn: () => unknown): void {
  assert.throws(fn, (err) => isRingkvError(err, code));
}

describe('pathOf', () => {
  it('cuts the query off', () => {
    assert.equal(pathOf('/v0/entity?id=a'), '/v0/entity');
    assert.equal(pathOf('/v0/status'), '/v0/status');
    assert.equal(pathOf('/v0/entities?'), '/v0/entities');
  });
});

describe('parseEntityParams', () => {
  const accepted: [string, { key: string; ack: number; from: number; ttlMs: number | undefined }][] = [
    ['/v0/entity?id=a', { key: 'a', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=a&from=1', { key: 'a', ack: 1, from: 1, ttlMs: undefined }],
    ['/v0/entity?id=a&from=2', { key: 'a', ack: 2, from: 2, ttlMs: undefined }],
    ['/v0/entity?id=a&from=4', { key: 'a', ack: 3, from: 4, ttlMs: undefined }],
    ['/v0/entity?id=a&ack=1', { key: 'a', ack: 1, from: 5, ttlMs: undefined }],
    ['/v0/entity?ack=2&from=3&id=a', { key: 'a', ack: 2, from: 3, ttlMs: undefined }],
    ['/v0/entity?id=a&ack=5&from=5', { key: 'a', ack: 5, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=a&ttl=1000', { key: 'a', ack: 3, from: 5, ttlMs: 1000 }],
    ['/v0/entity?id=a&ttl=630720000000', { key: 'a', ack: 3, from: 5, ttlMs: 630720000000 }],
    ['/v0/entity?id=a+b', { key: 'a b', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=a%2Bb%26c%3Dd', { key: 'a+b&c=d', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=caf%C3%A9', { key: 'café', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=%e2%82%ac', { key: '€', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=first&id=second', { key: 'first', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?x=1&&id=a&unknown&=z', { key: 'a', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?%69d=enc', { key: 'enc', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=a&ack=%32', { key: 'a', ack: 2, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=a=b', { key: 'a=b', ack: 3, from: 5, ttlMs: undefined }],
    ['/v0/entity?id=0123456789abcdef', { key: '0123456789abcdef', ack: 3, from: 5, ttlMs: undefined }],
  ];
  for (const [url, expected] of accepted) {
    it(`accepts ${url}`, () => {
      const params = parseEntityParams(url, limits);
      assert.deepEqual({ ...params, key: params.key.toString('utf8') }, { ...expected, trace: false });
    });
  }

  it('reads trace=1 (first one wins) and refuses any other trace', () => {
    assert.equal(parseEntityParams('/v0/entity?id=a&trace=1', limits).trace, true);
    assert.equal(parseEntityParams('/v0/entity?trace=%31&id=a', limits).trace, true);
    assert.equal(parseEntityParams('/v0/entity?id=a&trace=1&trace=2', limits).trace, true);
    assert.equal(parseEntityParams('/v0/entity?id=a&tracer=1', limits).trace, false);
    for (const query of ['trace=2', 'trace=x', 'trace=0', 'trace=', 'trace', 'trace=01', 'trace=true']) {
      assert.throws(
        () => parseEntityParams(`/v0/entity?id=a&${query}`, limits),
        (err) => isRingkvError(err, 'RINGKV_BAD_REQUEST') && err.message === 'Bad trace: expected 1',
        query,
      );
    }
  });

  const refused: [string, ErrorCode, string][] = [
    ['/v0/entity', 'RINGKV_BAD_REQUEST', 'Missing id'],
    ['/v0/entity?', 'RINGKV_BAD_REQUEST', 'Missing id'],
    ['/v0/entity?key=a', 'RINGKV_BAD_REQUEST', 'Missing id'],
    ['/v0/entity?id=', 'RINGKV_BAD_REQUEST', 'Empty id'],
    ['/v0/entity?id', 'RINGKV_BAD_REQUEST', 'Empty id'],
    ['/v0/entity?id=0123456789abcdefX', 'RINGKV_KEY_TOO_LONG', 'Key too long: id is over 16 bytes'],
    [
      '/v0/entity?id=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9a',
      'RINGKV_KEY_TOO_LONG',
      'Key too long: id is over 16 bytes',
    ],
    ['/v0/entity?id=%', 'RINGKV_BAD_REQUEST', 'Bad percent-encoding: % must be followed by two hex digits'],
    ['/v0/entity?id=a%2', 'RINGKV_BAD_REQUEST', 'Bad percent-encoding: % must be followed by two hex digits'],
    ['/v0/entity?id=%zz', 'RINGKV_BAD_REQUEST', 'Bad percent-encoding: % must be followed by two hex digits'],
    ['/v0/entity?id=%FF', 'RINGKV_BAD_REQUEST', 'Bad percent-encoding: not valid UTF-8'],
    ['/v0/entity?id=%C3', 'RINGKV_BAD_REQUEST', 'Bad percent-encoding: not valid UTF-8'],
    ['/v0/entity?id=a&ack=0', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=-1', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=1.5', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=abc', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=01', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=+1', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=1e1', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    ['/v0/entity?id=a&ack=0x1', 'RINGKV_BAD_REQUEST', 'Bad ack: not a positive integer'],
    [
      '/v0/entity?id=a&ack=1%',
      'RINGKV_BAD_REQUEST',
      'Bad percent-encoding: % must be followed by two hex digits',
    ],
    ['/v0/entity?id=a&from=0', 'RINGKV_BAD_REQUEST', 'Bad from: not a positive integer'],
    ['/v0/entity?id=a&from=x', 'RINGKV_BAD_REQUEST', 'Bad from: not a positive integer'],
    ['/v0/entity?id=a&from=6', 'RINGKV_BAD_REQUEST', 'Bad from: larger than the cluster (5 nodes)'],
    ['/v0/entity?id=a&from=1000000000000000', 'RINGKV_BAD_REQUEST', 'Bad from: not a positive integer'],
    ['/v0/entity?id=a&ack=3&from=2', 'RINGKV_BAD_REQUEST', 'Bad ack: larger than from'],
    ['/v0/entity?id=a&ack=6', 'RINGKV_BAD_REQUEST', 'Bad ack: larger than from'],
    ['/v0/entity?id=a&ttl=0', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=-5', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=1.5', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=soon', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=01', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=1e3', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=1%2500', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
    ['/v0/entity?id=a&ttl=99999999999999999999x', 'RINGKV_BAD_REQUEST', 'Bad ttl: not a positive integer'],
  ];
  it('takes any positive integer as a ttl, one over the bound as the bound', () => {
    const ttlOf = (ttl: string) => parseEntityParams(`/v0/entity?id=a&ttl=${ttl}`, limits).ttlMs;
    assert.equal(ttlOf('1'), 1);
    assert.equal(ttlOf('630720000001'), 630_720_000_001);
    assert.equal(ttlOf('%35000'), 5000);
    assert.equal(ttlOf(String(defaults.ttlMsMax)), defaults.ttlMsMax);
    assert.equal(ttlOf(String(defaults.ttlMsMax + 1)), defaults.ttlMsMax);
    assert.equal(ttlOf('999999999999999'), defaults.ttlMsMax);
    assert.equal(ttlOf('1'.repeat(400)), defaults.ttlMsMax);
  });
  for (const [url, code, message] of refused) {
    it(`refuses ${url} with ${code}`, () => {
      assert.throws(
        () => parseEntityParams(url, limits),
        (err) => isRingkvError(err, code) && err.message === message,
      );
    });
  }
});

describe('parseRangeParams', () => {
  it('reads start, end and scope', () => {
    const all = parseRangeParams('/v0/entities?start=a', limits);
    assert.deepEqual([all.start.toString(), all.end, all.scope], ['a', undefined, 'local']);
    const bounded = parseRangeParams('/v0/entities?start=a&end=k%C3%A9&scope=cluster', limits);
    assert.deepEqual(
      [bounded.start.toString(), bounded.end?.toString(), bounded.scope],
      ['a', 'ké', 'cluster'],
    );
    assert.equal(parseRangeParams('/v0/entities?start=a&scope=local', limits).scope, 'local');
  });

  it('reads format: ndjson, chunks, or none given', () => {
    assert.equal(parseRangeParams('/v0/entities?start=a', limits).format, undefined);
    assert.equal(parseRangeParams('/v0/entities?start=a&format=ndjson', limits).format, 'ndjson');
    assert.equal(parseRangeParams('/v0/entities?format=%6Edjson&start=a', limits).format, 'ndjson');
    assert.equal(parseRangeParams('/v0/entities?start=a&format=chunks', limits).format, 'chunks');
    for (const format of ['json', 'NDJSON', '', 'ndjson%20', 'x-ndjson']) {
      assert.throws(
        () => parseRangeParams(`/v0/entities?start=a&format=${format}`, limits),
        (err) =>
          isRingkvError(err, 'RINGKV_BAD_REQUEST') && err.message === 'Bad format: expected ndjson or chunks',
        format,
      );
    }
  });

  it('reads an empty end as a bound no key is below: an empty range', () => {
    const empty = parseRangeParams('/v0/entities?start=b&end=', limits);
    assert.deepEqual([empty.start.toString(), empty.end?.toString()], ['b', 'b']);
  });

  it('refuses a missing or empty start, a bad scope, a long bound', () => {
    rejectsWith('RINGKV_BAD_REQUEST', () => parseRangeParams('/v0/entities', limits));
    rejectsWith('RINGKV_BAD_REQUEST', () => parseRangeParams('/v0/entities?end=z', limits));
    rejectsWith('RINGKV_BAD_REQUEST', () => parseRangeParams('/v0/entities?start=', limits));
    rejectsWith('RINGKV_BAD_REQUEST', () => parseRangeParams('/v0/entities?start=a&scope=world', limits));
    rejectsWith('RINGKV_BAD_REQUEST', () => parseRangeParams('/v0/entities?start=%G0', limits));
    rejectsWith('RINGKV_KEY_TOO_LONG', () =>
      parseRangeParams(`/v0/entities?start=${'a'.repeat(18)}`, limits),
    );
    rejectsWith('RINGKV_KEY_TOO_LONG', () =>
      parseRangeParams(`/v0/entities?start=a&end=${'a'.repeat(18)}`, limits),
    );
  });

  it('takes a bound one byte over the longest key: the key after a longest one, to go on from it', () => {
    const longest = 'k'.repeat(16);
    const after = parseRangeParams(`/v0/entities?start=${longest}%00&end=${longest}%00`, limits);
    assert.deepEqual(after.start, Buffer.from(`${longest}\0`));
    assert.deepEqual(after.end, Buffer.from(`${longest}\0`));
  });
});

describe('parseHealthParams', () => {
  it('reads ready=1, and no ready at all', () => {
    assert.deepEqual(parseHealthParams('/v0/health'), { ready: false });
    assert.deepEqual(parseHealthParams('/v0/health?'), { ready: false });
    assert.deepEqual(parseHealthParams('/v0/health?other=x'), { ready: false });
    assert.deepEqual(parseHealthParams('/v0/health?ready=1'), { ready: true });
    assert.deepEqual(parseHealthParams('/v0/health?x=y&ready=%31'), { ready: true });
    assert.deepEqual(parseHealthParams('/v0/health?ready=1&ready=2'), { ready: true });
  });

  for (const query of [
    'ready=2',
    'ready=yes',
    'ready=true',
    'ready=0',
    'ready=',
    'ready',
    'ready=01',
    'ready=1+',
  ]) {
    it(`refuses ${query}`, () => {
      assert.throws(
        () => parseHealthParams(`/v0/health?${query}`),
        (err) => isRingkvError(err, 'RINGKV_BAD_REQUEST') && err.message === 'Bad ready: expected 1',
      );
    });
  }
});

describe('positiveInteger and quorum', () => {
  it('parses canonical decimals only', () => {
    assert.equal(positiveInteger('1', 'n'), 1);
    assert.equal(positiveInteger('42', 'n'), 42);
    assert.equal(positiveInteger('999999999999999', 'n'), 999_999_999_999_999);
    for (const bad of ['', '0', '00', '07', '-3', '3.0', ' 3', '3 ', '٣', '1000000000000000']) {
      rejectsWith('RINGKV_BAD_REQUEST', () => positiveInteger(bad, 'n'));
    }
  });

  it('computes a majority', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(quorum), [1, 2, 2, 3, 3, 4]);
  });
});

describe('decodeComponent', () => {
  it('agrees with URLSearchParams on any well-formed encoding of any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.boolean(), (text, spacesAsPlus) => {
        let encoded = encodeURIComponent(text);
        if (spacesAsPlus) encoded = encoded.replaceAll('%20', '+');
        const expected = new URLSearchParams(`v=${encoded}`).get('v')!;
        assert.deepEqual(decodeComponent(encoded), Buffer.from(expected, 'utf8'));
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('keeps characters URLSearchParams keeps as they are', () => {
    assert.equal(decodeComponent("a-b_c.d~e!f*g'h(i)j").toString(), "a-b_c.d~e!f*g'h(i)j");
    assert.equal(decodeComponent('%41%62').toString(), 'Ab');
    assert.equal(decodeComponent('€').toString(), '€');
  });
});
