/**
 * Text from outside the tool (a key or value from the store, a node's reason,
 * a URL or state in its /v0/status) made safe to print on a terminal: every
 * control character written as a visible escape, so that none reaches the
 * terminal as a control. ESC (0x1b) starts sequences that move the cursor,
 * rewrite or clear the screen, set the window title or hide text; CR and BS
 * write over what was printed; a C1 control (U+0080-U+009F), CSI (U+009B)
 * among them, does what its ESC form does on the terminals that take C1
 * controls encoded in UTF-8 (xterm and VTE do).
 *
 * The controls are C0 (0x00-0x1f), DEL (0x7f) and C1 (U+0080-U+009F). Three
 * forms, one per kind of output:
 *
 *   terminalSafe('down\x1b[2J')          'down\\x1b[2J'           a line of text for people
 *   escapeLine(Buffer.from('a\tb\x1b'))  'a\\tb\\x1b' as bytes    scan's text format: reversible
 *   jsonSafe('{"v":"\u009b"}')           '{"v":"\\u009b"}'        JSON text, its meaning unchanged
 *
 * TAB, LF and CR are written \t, \n and \r; the other controls \xHH, in
 * lowercase hexadecimal.
 */

/** Whether a code point (or a byte) is a C0 control, DEL or a C1 control. */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

function hex2(code: number): string {
  return code.toString(16).padStart(2, '0');
}

/** \t \n \r, else \xHH. */
function controlEscape(code: number): string {
  return code === 0x09 ? '\\t' : code === 0x0a ? '\\n' : code === 0x0d ? '\\r' : `\\x${hex2(code)}`;
}

/**
 * `text` with each control character written as \t, \n, \r or \xHH (its
 * code point, as in a JavaScript string: a C1 control U+009B is \x9b), for
 * one line of diagnostic text: a failure's reason, a URL or state a node
 * sent. Not reversible: a backslash is left as it is, so that paths and
 * messages read as they were written; where output must be read back (scan),
 * use escapeLine.
 *
 *   terminalSafe('Bad dir: \x1b]0;owned\x07') === 'Bad dir: \\x1b]0;owned\\x07'
 */
export function terminalSafe(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isControl(code)) continue;
    out += text.slice(from, i) + controlEscape(code);
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * What escapeLine writes for each byte on its own: \\ for a backslash,
 * \t \n \r, \xHH for the other C0 controls and DEL; undefined for a byte
 * that goes out as it is (0xc2 is looked at with the byte after it).
 */
const BYTE_ESCAPES: readonly (Buffer | undefined)[] = Array.from({ length: 256 }, (_, byte) =>
  byte === 0x5c
    ? Buffer.from('\\\\', 'latin1')
    : byte < 0x20 || byte === 0x7f
      ? Buffer.from(controlEscape(byte), 'latin1')
      : undefined,
);

/**
 * A key or value as one line of scan's text format: bytes in, bytes out.
 * A backslash is written \\, TAB, CR and LF \t, \r and \n, every other C0
 * control and DEL \xHH, and a C1 control in UTF-8 (0xc2 then 0x80-0x9f)
 * as its two bytes, \xc2\xHH. Every other byte goes out as it came, so that
 * UTF-8 text stays readable and a value that is not UTF-8 keeps its bytes.
 * Reversible: a backslash always starts one of \\ \t \r \n \xHH, and \xHH is
 * the byte HH. The input is returned as it is when nothing is escaped.
 *
 * A byte 0x80-0x9f that is not after 0xc2 stays as it is. Inside valid UTF-8
 * it is a continuation byte of a printable character (U+201B is e2 80 9b),
 * which escaping would break; outside valid UTF-8 (a stray continuation byte,
 * or an overlong form such as e0 82 9b) a UTF-8 terminal's decoder shows it
 * as a replacement character, never as a control: 0xc2 0x80-0x9f is the only
 * valid UTF-8 form of a C1 control, and 0xc2 can never be a continuation
 * byte, so a decoder that met bad bytes before it still reads the pair as
 * one, hence it is always escaped. A terminal that takes raw 8-bit C1
 * controls (a Latin-1 one) cannot be protected without escaping every byte
 * above 0x7f, the UTF-8 text with them; the format is for UTF-8 terminals.
 *
 *   escapeLine(Buffer.from('two\nlines \x1b[2J')).toString() === 'two\\nlines \\x1b[2J'
 */
export function escapeLine(bytes: Buffer): Buffer {
  let parts: Buffer[] | undefined;
  let from = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    let escaped = BYTE_ESCAPES[byte];
    let width = 1;
    if (escaped === undefined) {
      const next = bytes[i + 1];
      if (byte !== 0xc2 || next === undefined || next < 0x80 || next > 0x9f) continue;
      escaped = Buffer.from(`\\xc2\\x${hex2(next)}`, 'latin1');
      width = 2;
    }
    parts ??= [];
    parts.push(bytes.subarray(from, i), escaped);
    from = i + width;
    i += width - 1;
  }
  if (parts === undefined) return bytes;
  parts.push(bytes.subarray(from));
  return Buffer.concat(parts);
}

const DEL_OR_C1 = /[\u007f-\u009f]/;

/**
 * JSON text with DEL and the C1 controls written \u007f-\u009f, which
 * JSON.stringify leaves raw (it escapes only U+0000-U+001F): the same JSON
 * value once parsed, printable on a terminal. `json` must be JSON text (as
 * JSON.stringify writes it), where these characters occur only inside
 * strings, where \u00HH means the same character.
 *
 *   jsonSafe(JSON.stringify({ move: '\u009b2J' })) === '{"move":"\\u009b2J"}'
 */
export function jsonSafe(json: string): string {
  // Most lines have none: one native scan instead of a loop over every character (export's values).
  if (!DEL_OR_C1.test(json)) return json;
  let out = '';
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const code = json.charCodeAt(i);
    if (code < 0x7f || code > 0x9f) continue;
    out += `${json.slice(from, i)}\\u00${hex2(code)}`;
    from = i + 1;
  }
  return from === 0 ? json : out + json.slice(from);
}

/** One `ringkv: ...` line on stderr, escaped by terminalSafe: errors quote a node's reason or an argument. */
export function complain(line: string): void {
  process.stderr.write(`ringkv: ${terminalSafe(line)}\n`);
}
