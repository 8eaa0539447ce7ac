import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { valueEntry } from '../../storage/index.js';
import { acceptsNdjson, chunkFrame, NDJSON_TYPE, ndjsonLine, rangeEncoding } from './range-format.js';

const entry = (key: Buffer | string, value: Buffer | string) =>
  valueEntry(Buffer.from(key), 1n, Buffer.from(value), 0);

/** A line back to the key and value bytes, as a client decodes it. */
function decode(line: string): { key: Buffer; value: Buffer } {
  assert.ok(line.endsWith('\n'));
  assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
  const parsed = JSON.parse(line) as { key: string; value: string; keyBase64?: true; valueBase64?: true };
  return {
    key: Buffer.from(parsed.key, parsed.keyBase64 === true ? 'base64' : 'utf8'),
    value: Buffer.from(parsed.value, parsed.valueBase64 === true ? 'base64' : 'utf8'),
  };
}

describe('ndjsonLine', () => {
  it('writes UTF-8 keys and values as JSON strings, with no flags', () => {
    assert.equal(ndjsonLine(entry('user:1', 'Ada')), '{"key":"user:1","value":"Ada"}\n');
    assert.equal(ndjsonLine(entry('k', '')), '{"key":"k","value":""}\n');
    assert.equal(
      ndjsonLine(entry('caf\u00e9\n', 'a "b"\\\t\u0000')),
      '{"key":"caf\u00e9\\n","value":"a \\"b\\"\\\\\\t\\u0000"}\n',
    );
  });

  it('writes bytes that are not UTF-8 in base64, flagged per field', () => {
    assert.equal(
      ndjsonLine(entry('blob', Buffer.from([0x00, 0xff]))),
      '{"key":"blob","value":"AP8=","valueBase64":true}\n',
    );
    assert.equal(
      ndjsonLine(entry(Buffer.from([0xc3]), 'v')),
      '{"key":"ww==","value":"v","keyBase64":true}\n',
    );
    assert.equal(
      ndjsonLine(entry(Buffer.from([0x80]), Buffer.from([0xfe]))),
      '{"key":"gA==","value":"/g==","keyBase64":true,"valueBase64":true}\n',
    );
  });

  it('round-trips any key and value bytes, always one line', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 })),
        fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 60 })),
        (key, value) => {
          const keyBytes = typeof key === 'string' ? Buffer.from(key) : Buffer.from(key);
          const valueBytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
          const decoded = decode(ndjsonLine(entry(keyBytes, valueBytes)));
          assert.deepEqual(decoded.key, keyBytes);
          assert.deepEqual(decoded.value, valueBytes);
        },
      ),
      propertyParams({ numRuns: 500 }),
    );
  });

  it('keeps a leading byte order mark as text', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf, 0x41]);
    assert.deepEqual(decode(ndjsonLine(entry('k', bom))).value, bom);
  });
});

describe('chunkFrame', () => {
  it('is key \\n value, bytes as stored', () => {
    assert.deepEqual(
      chunkFrame(entry('k', Buffer.from([0xff, 0x0a]))),
      Buffer.from([0x6b, 0x0a, 0xff, 0x0a]),
    );
  });
});

describe('choosing the format', () => {
  it('reads Accept: application/x-ndjson with a weight above 0, in any case, among others', () => {
    for (const accept of [
      'application/x-ndjson',
      'Application/X-NDJSON',
      'text/plain, application/x-ndjson',
      'application/x-ndjson; q=0.1',
      'application/x-ndjson;charset=utf-8',
    ]) {
      assert.equal(acceptsNdjson(accept), true, accept);
    }
    for (const accept of [
      '',
      '*/*',
      'application/*',
      'application/json',
      'application/x-ndjson;q=0',
      'application/x-ndjson; q=0.0',
      'application/x-ndjsonx',
    ]) {
      assert.equal(acceptsNdjson(accept), false, accept);
    }
  });

  it('lets the query decide over the header', () => {
    assert.equal(rangeEncoding(undefined, undefined).contentType, 'application/octet-stream');
    assert.equal(rangeEncoding(undefined, NDJSON_TYPE).contentType, NDJSON_TYPE);
    assert.equal(rangeEncoding('chunks', NDJSON_TYPE).contentType, 'application/octet-stream');
    assert.equal(rangeEncoding('ndjson', '*/*').contentType, NDJSON_TYPE);
  });
});
