import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../test/support/property.js';
import { escapeLine, jsonSafe, terminalSafe } from './terminal-safe.js';

/** Whether a code point is one a terminal may act on: C0, DEL, C1. */
const isControl = (code: number): boolean => code < 0x20 || (code >= 0x7f && code <= 0x9f);

/** The code points that a UTF-8 terminal would decode from `bytes` and act on. */
function controlsSeen(bytes: Uint8Array): number[] {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return [...text].map((c) => c.codePointAt(0)!).filter(isControl);
}

/** scan's text line read back: \\ \t \r \n \xHH to their bytes; anything else as it is. */
function unescapeLine(line: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < line.length; i++) {
    const byte = line[i]!;
    if (byte !== 0x5c) {
      out.push(byte);
      continue;
    }
    const kind = String.fromCharCode(line[i + 1]!);
    if (kind === 'x') {
      const hex = line.subarray(i + 2, i + 4).toString('latin1');
      assert.match(hex, /^[0-9a-f]{2}$/, `\\x at ${i} takes two lowercase hex digits`);
      out.push(Number.parseInt(hex, 16));
      i += 3;
      continue;
    }
    const simple: Record<string, number> = { '\\': 0x5c, t: 0x09, r: 0x0d, n: 0x0a };
    assert.ok(kind in simple, `a backslash at ${i} starts an escape, not ${JSON.stringify(kind)}`);
    out.push(simple[kind]!);
    i += 1;
  }
  return Buffer.from(out);
}

/** Bytes rich in what matters here: controls, backslashes, 0xc2 and the bytes 0x80-0x9f, UTF-8 leads. */
const lineBytes = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x00, 0x07, 0x08, 0x09, 0x0a, 0x0d, 0x1b, 0x5c, 0x78, 0x7f, 0x80, 0x9b, 0x9f, 0xa0),
      fc.constantFrom(0xc2, 0xe0, 0xe2, 0xf0),
    ),
    { maxLength: 40 },
  )
  .map((bytes) => Buffer.from(bytes));

describe('terminalSafe', () => {
  it('writes C0 controls, DEL and C1 controls as visible escapes, and nothing else', () => {
    assert.equal(terminalSafe('up'), 'up');
    assert.equal(terminalSafe('Bad dir: \x1b]0;owned\x07'), 'Bad dir: \\x1b]0;owned\\x07');
    assert.equal(terminalSafe('a\tb\nc\rd'), 'a\\tb\\nc\\rd');
    assert.equal(terminalSafe('\x00\x08\x1f\x7f'), '\\x00\\x08\\x1f\\x7f');
    assert.equal(terminalSafe('\u0080\u009b2J\u009f'), '\\x80\\x9b2J\\x9f');
    // Printable text around them, backslashes and non-ASCII included, is left as it is.
    assert.equal(terminalSafe('C:\\data ü\u00a0€ \u201b\x1b[31m'), 'C:\\data ü\u00a0€ \u201b\\x1b[31m');
  });

  it('leaves no control character, and changes text that has none not at all', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const safe = terminalSafe(text);
        assert.deepEqual([...safe].map((c) => c.codePointAt(0)!).filter(isControl), []);
        if (![...text].some((c) => isControl(c.codePointAt(0)!))) assert.equal(safe, text);
      }),
      propertyParams({ numRuns: 500 }),
    );
  });
});

describe("escapeLine (scan's text format)", () => {
  it('keeps its escapes for backslash, TAB, CR and LF, and writes the other controls as \\xHH', () => {
    const line = (bytes: Buffer | string): string => escapeLine(Buffer.from(bytes)).toString('latin1');
    assert.equal(line('two\nlines\tand \\\r'), 'two\\nlines\\tand \\\\\\r');
    assert.equal(line('\x1b]0;owned\x07 \x1b[2J'), '\\x1b]0;owned\\x07 \\x1b[2J');
    assert.equal(line(Buffer.from([0x00, 0x1f, 0x7f, 0x20, 0x7e])), '\\x00\\x1f\\x7f ~');
    // A C1 control in UTF-8 (U+009B, CSI) is written as its two bytes.
    assert.equal(line(Buffer.from([0xc2, 0x9b, 0x32, 0x4a])), '\\xc2\\x9b2J');
    assert.equal(line(Buffer.from([0xc2, 0x80, 0xc2, 0x9f])), '\\xc2\\x80\\xc2\\x9f');
  });

  it('lets bytes that are no control through as they came: UTF-8 text, and bytes that are not UTF-8', () => {
    for (const bytes of [
      Buffer.from('plain key'),
      Buffer.from('ü\u00a0€ \u201b'), // U+00A0 is c2 a0; U+201B is e2 80 9b: a 0x9b inside a character
      Buffer.from([0xff, 0xfe, 0x80, 0x9b, 0xc2]), // not UTF-8: stray continuation bytes, a cut-off lead
      Buffer.from([0xe0, 0x82, 0x9b]), // an overlong U+009B: not UTF-8, decoded as replacement characters
    ]) {
      assert.equal(escapeLine(bytes), bytes, bytes.toString('hex'));
    }
  });

  it('is reversible and leaves nothing a UTF-8 terminal would take as a control', () => {
    fc.assert(
      fc.property(lineBytes, (bytes) => {
        const line = escapeLine(bytes);
        assert.deepEqual(unescapeLine(line), bytes, 'read back to the same bytes');
        assert.deepEqual(controlsSeen(line), [], `no control decoded from ${line.toString('hex')}`);
        assert.ok(!line.includes(0x0a) && !line.includes(0x0d), 'one line');
        if (controlsSeen(bytes).length === 0 && !bytes.includes(0x5c)) {
          assert.equal(line, bytes, 'nothing to escape: the same buffer');
        }
      }),
      propertyParams({ numRuns: 1000 }),
    );
  });
});

describe('jsonSafe', () => {
  it('escapes DEL and the C1 controls, which JSON.stringify leaves raw, to the same JSON value', () => {
    assert.equal(JSON.stringify('\u009b'), '"\u009b"', 'what JSON.stringify does');
    assert.equal(jsonSafe(JSON.stringify({ move: '\u009b2J\x7f' })), '{"move":"\\u009b2J\\u007f"}');
    assert.equal(jsonSafe('{"a":"ü"}'), '{"a":"ü"}');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const json = jsonSafe(JSON.stringify({ text }));
        assert.deepEqual(JSON.parse(json), { text });
        assert.deepEqual([...json].map((c) => c.codePointAt(0)!).filter(isControl), []);
      }),
      propertyParams({ numRuns: 500 }),
    );
  });
});
