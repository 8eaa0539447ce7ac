import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CorruptionError, RingkvError } from '../util/errors.js';
import { errorAnswer } from './errors.js';

describe('errorAnswer', () => {
  it('maps expected errors to their status with their message, and logs nothing', () => {
    assert.deepEqual(errorAnswer(new RingkvError('RINGKV_BAD_REQUEST', 'Missing id')), {
      status: 400,
      body: 'Missing id',
      logLine: undefined,
    });
    assert.equal(errorAnswer(new RingkvError('RINGKV_KEY_TOO_LONG', 'k')).status, 414);
    assert.equal(errorAnswer(new RingkvError('RINGKV_VALUE_TOO_LARGE', 'v')).status, 413);
    assert.equal(errorAnswer(new RingkvError('RINGKV_NOT_ENOUGH_REPLICAS', 'r')).status, 504);
    assert.equal(errorAnswer(new RingkvError('RINGKV_TIMEOUT', 't')).status, 504);
    assert.equal(errorAnswer(new RingkvError('RINGKV_UNAVAILABLE', 'u')).status, 503);
    assert.equal(errorAnswer(new RingkvError('RINGKV_CLOSED', 'c')).status, 503);
    assert.equal(errorAnswer(new RingkvError('RINGKV_UNAUTHORIZED', 'a')).status, 401);
    assert.deepEqual(
      errorAnswer(new RingkvError('RINGKV_NO_SPACE', 'Disk full: WAL write failed: /d/1.log')),
      {
        status: 507,
        body: 'Disk full: WAL write failed: /d/1.log',
        logLine: undefined,
      },
    );
  });

  it('answers a damaged file 503 without naming it, and logs the file and offset', () => {
    const answer = errorAnswer(new CorruptionError('/data/000007.sst', 8192, 'block checksum mismatch'));
    assert.equal(answer.status, 503);
    assert.equal(answer.body, 'Data unavailable: a damaged file on this node; see its log');
    assert.equal(
      answer.logLine,
      'RINGKV_CORRUPTION: Corruption in /data/000007.sst at offset 8192: block checksum mismatch',
    );
    // A corruption error of the plain class too (a code, not a subclass, decides).
    const plain = errorAnswer(new RingkvError('RINGKV_CORRUPTION', 'Corruption in 000001.log at offset 3'));
    assert.equal(plain.status, 503);
    assert.equal(plain.logLine, 'RINGKV_CORRUPTION: Corruption in 000001.log at offset 3');
  });

  it('keeps I/O errors 500 without detail, with a log line', () => {
    assert.deepEqual(errorAnswer(new RingkvError('RINGKV_IO', 'Cannot read 000007.sst: EIO')), {
      status: 500,
      body: 'Internal error',
      logLine: 'RINGKV_IO: Cannot read 000007.sst: EIO',
    });
  });

  it('answers anything else 500 without detail, with a log line', () => {
    assert.deepEqual(errorAnswer(new TypeError('x is undefined')), {
      status: 500,
      body: 'Internal error',
      logLine: 'Unexpected error: x is undefined',
    });
  });
});
