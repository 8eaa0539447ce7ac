import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRingkvError } from '../util/errors.js';
import { parseCommandLine, parseFlags } from './args.js';

describe('parseCommandLine', () => {
  it('refuses a flag or a switch given twice, rather than keep one of them', () => {
    for (const args of [
      ['--data', 'a', '--data', 'b'],
      ['--data=a', '--data', 'a'],
      ['--json', '--json'],
    ]) {
      assert.throws(
        () => parseCommandLine(args, { flags: ['data'], switches: ['json'] }),
        (err) =>
          isRingkvError(err, 'RINGKV_CONFIG') && /^Option '--(data|json)' is given twice$/.test(err.message),
        args.join(' '),
      );
    }
  });

  it('takes each flag once, and -- ends the flags', () => {
    assert.deepEqual(parseFlags(['--data', 'a', '--url', 'u'], ['data', 'url']), {
      data: 'a',
      url: 'u',
      help: false,
    });
    const line = parseCommandLine(['--data', 'a', '--', '--data'], {
      flags: ['data'],
      positionals: { min: 1, max: 1, synopsis: 'KEY' },
    });
    assert.deepEqual(line.positionals, ['--data']);
  });

  it("takes a negative number as a flag's value, for the flag's own check to refuse", () => {
    const line = parseCommandLine(['--timeout', '-1', '--port', '-5', '--', '-7'], {
      flags: ['timeout', 'port'],
      positionals: { min: 1, max: 1, synopsis: 'KEY' },
    });
    assert.deepEqual([line.flags.timeout, line.flags.port, line.positionals], ['-1', '-5', ['-7']]);
    // A value that looks like another flag is still refused (a value forgotten before it).
    assert.throws(
      () => parseFlags(['--data', '--url', 'u'], ['data', 'url']),
      (err) => isRingkvError(err, 'RINGKV_CONFIG') && err.message.includes("'--data"),
    );
    // A switch takes no value: a negative number after it is no flag's.
    assert.throws(
      () => parseCommandLine(['--json', '-1'], { flags: ['data'], switches: ['json'] }),
      (err) => isRingkvError(err, 'RINGKV_CONFIG'),
    );
  });
});
