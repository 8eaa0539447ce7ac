/**
 * Bad input to a live node, over raw sockets: malformed request lines, huge
 * and broken headers, bad parameters, truncated and contradictory bodies,
 * wrong methods, and garbage frames on an internode connection. Each probe
 * must get a 4xx or a closed connection; after each one the node must still
 * be alive and answer /v0/health. None writes a valid entry, so the load's
 * record of what each key holds stays true.
 *
 *   for (const probe of badInputProbes(random)) {
 *     const outcome = await sendProbe(port, probe);   // '400', 'closed', ...
 *   }
 */
import { connect } from 'node:net';
import { sleep } from '../support/node-process.js';
import type { Random } from './random.js';

export interface Probe {
  readonly name: string;
  /** Written in order, `gapMs` apart. */
  readonly parts: readonly (string | Buffer)[];
  readonly gapMs?: number;
  /** Half-close after the last part (the node sees the end of the request stream). */
  readonly end?: boolean;
}

/** How a probe was answered. */
export type ProbeClass = 'rejected' | 'closed' | 'accepted' | 'server-error' | 'no-answer';

export interface ProbeOutcome {
  readonly probe: string;
  readonly class: ProbeClass;
  /** Status codes in the order answered (101 for an Upgrade), and whether the node closed the connection. */
  readonly detail: string;
}

/** How long a probe waits for an answer or the close, after its last byte. */
const ANSWER_WAIT_MS = 2000;
/** After an answer, how long without more bytes before the probe is done (pipelined answers come together). */
const QUIET_MS = 300;
const POLL_MS = 50;
/** A probe's bytes received are capped (a range answer could be long). */
const RECEIVE_BYTES_MAX = 1 << 20;

const CRLF = '\r\n';
const HOST = `Host: 127.0.0.1${CRLF}`;

function get(path: string): string {
  return `GET ${path} HTTP/1.1${CRLF}${HOST}${CRLF}`;
}

/** One internode frame: u32 length of type+id+body, u8 type, u32 id, body (docs/formats/internode.md). */
function frame(type: number, id: number, body: Buffer, length = 5 + body.length): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(length >>> 0, 0);
  head.writeUInt8(type, 4);
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, body]);
}

const UPGRADE = `GET /v0/internode HTTP/1.1${CRLF}${HOST}Connection: Upgrade${CRLF}Upgrade: ringkv-internode/1${CRLF}${CRLF}`;

/** The probes, junk bytes drawn from `random`. */
export function badInputProbes(random: Random): Probe[] {
  const junk = (bytes: number): Buffer =>
    Buffer.from(Array.from({ length: bytes }, () => random.int(0, 255)));
  const entity = '/v0/entity?id=torture-probe';
  const put = (headers: string, body = ''): string =>
    `PUT ${entity} HTTP/1.1${CRLF}${HOST}${headers}${CRLF}${body}`;
  // An entry whose kind byte (0x09) no entry has: it can never decode, so nothing is stored.
  const badEntry = Buffer.concat([Buffer.from([0x09]), junk(30)]);
  return [
    // Request lines.
    { name: 'garbage request line', parts: [`HELLO${CRLF}${CRLF}`] },
    { name: 'method only', parts: [`GET${CRLF}${CRLF}`] },
    { name: 'HTTP/9.9', parts: [`GET /v0/health HTTP/9.9${CRLF}${HOST}${CRLF}`] },
    { name: 'HTTP/0.9 request line', parts: [`GET /v0/health${CRLF}${CRLF}`] },
    { name: '4 KiB of random bytes', parts: [junk(4096)] },
    { name: 'NUL in the target', parts: [`GET /v0/entity?id=a\u0000b HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'space in the target', parts: [`GET /v0/entity?id=a b HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: '64 KiB target', parts: [get(`/v0/entity?id=${'k'.repeat(64 * 1024)}`)] },
    { name: 'absolute-form target', parts: [`GET http://elsewhere/v0/health HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'asterisk target', parts: [`OPTIONS * HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: '10,000 query parameters', parts: [get(`/v0/entity?id=a${'&x=1'.repeat(10_000)}`)] },
    // Headers.
    {
      name: '100 KiB header value',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}X-Big: ${'v'.repeat(100 * 1024)}${CRLF}${CRLF}`],
    },
    {
      name: '2,000 headers',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}${`X-H: v${CRLF}`.repeat(2000)}${CRLF}`],
    },
    {
      name: 'header line without a colon',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}Not a header${CRLF}${CRLF}`],
    },
    {
      name: 'space in a header name',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}Bad Name: v${CRLF}${CRLF}`],
    },
    {
      name: 'obsolete line folding',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}X-Fold: a${CRLF} b${CRLF}${CRLF}`],
    },
    {
      name: 'control byte in a header value',
      parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}X-Ctl: a\u0001b${CRLF}${CRLF}`],
    },
    { name: 'two Host headers', parts: [`GET /v0/health HTTP/1.1${CRLF}${HOST}${HOST}${CRLF}`] },
    { name: 'bare LF line ends', parts: ['GET /v0/health HTTP/1.1\nHost: 127.0.0.1\n\n'] },
    // Parameters.
    { name: 'no id', parts: [get('/v0/entity')] },
    { name: 'empty id', parts: [get('/v0/entity?id=')] },
    { name: 'malformed escape in id', parts: [get('/v0/entity?id=%ZZ')] },
    { name: 'truncated escape in id', parts: [get('/v0/entity?id=abc%')] },
    { name: 'ack=0', parts: [get('/v0/entity?id=a&ack=0&from=3')] },
    { name: 'ack=abc', parts: [get('/v0/entity?id=a&ack=abc')] },
    { name: 'ack=02', parts: [get('/v0/entity?id=a&ack=02&from=3')] },
    { name: 'ack > from', parts: [get('/v0/entity?id=a&ack=3&from=2')] },
    { name: 'from beyond the cluster', parts: [get('/v0/entity?id=a&ack=1&from=99')] },
    { name: 'ack of 40 digits', parts: [get(`/v0/entity?id=a&ack=${'9'.repeat(40)}`)] },
    { name: 'ttl=-5', parts: [put(`Content-Length: 1${CRLF}`, 'x').replace(entity, `${entity}&ttl=-5`)] },
    { name: 'ttl=1.5', parts: [put(`Content-Length: 1${CRLF}`, 'x').replace(entity, `${entity}&ttl=1.5`)] },
    { name: 'key over 1,024 bytes', parts: [get(`/v0/entity?id=${'k'.repeat(2000)}`)] },
    { name: 'ready=2', parts: [get('/v0/health?ready=2')] },
    { name: 'unknown path', parts: [get('/v0/nope')] },
    { name: 'range without start', parts: [get('/v0/entities')] },
    { name: 'range with a bad scope', parts: [get('/v0/entities?start=a&scope=galaxy')] },
    // Bodies.
    {
      name: 'body shorter than Content-Length, then end',
      parts: [put(`Content-Length: 100${CRLF}`, 'short')],
      end: true,
    },
    { name: 'Content-Length: abc', parts: [put(`Content-Length: abc${CRLF}`, 'x')] },
    { name: 'Content-Length: -1', parts: [put(`Content-Length: -1${CRLF}`, 'x')] },
    {
      name: 'two different Content-Lengths',
      parts: [put(`Content-Length: 1${CRLF}Content-Length: 2${CRLF}`, 'xy')],
    },
    {
      name: 'Content-Length and chunked together',
      parts: [
        put(`Content-Length: 3${CRLF}Transfer-Encoding: chunked${CRLF}`, `3${CRLF}abc${CRLF}0${CRLF}${CRLF}`),
      ],
    },
    { name: 'bad chunk size', parts: [put(`Transfer-Encoding: chunked${CRLF}`, `zz${CRLF}abc${CRLF}`)] },
    {
      name: 'truncated chunked body, then end',
      parts: [put(`Transfer-Encoding: chunked${CRLF}`, `10${CRLF}abc`)],
      end: true,
    },
    { name: 'unknown transfer coding', parts: [put(`Transfer-Encoding: gzip${CRLF}`, 'x')] },
    {
      name: 'value over 8 MiB announced',
      parts: [put(`Content-Length: ${9 * 1024 * 1024}${CRLF}`, 'x'.repeat(1000))],
    },
    {
      name: 'Expect: 100-continue for 9 MiB',
      parts: [put(`Content-Length: ${9 * 1024 * 1024}${CRLF}Expect: 100-continue${CRLF}`)],
    },
    { name: 'head cut short, then end', parts: [`PUT ${entity} HTTP/1.1${CRLF}Content-Le`], end: true },
    {
      name: 'head dripped a byte per 100 ms',
      parts: [...`GET /v0/health HTTP/1.1${CRLF}X-Slow: abcdefghijklmnopqrst`],
      gapMs: 100,
    },
    {
      name: 'pipelined: good, garbage, good',
      parts: [`${get('/v0/health')}BOGUS${CRLF}${CRLF}${get('/v0/health')}`],
    },
    // Methods.
    {
      name: 'POST /v0/entity',
      parts: [`POST ${entity} HTTP/1.1${CRLF}${HOST}Content-Length: 1${CRLF}${CRLF}x`],
    },
    {
      name: 'PATCH /v0/entity',
      parts: [`PATCH ${entity} HTTP/1.1${CRLF}${HOST}Content-Length: 1${CRLF}${CRLF}x`],
    },
    { name: 'DELETE /v0/health', parts: [`DELETE /v0/health HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'PUT /metrics', parts: [`PUT /metrics HTTP/1.1${CRLF}${HOST}Content-Length: 0${CRLF}${CRLF}`] },
    { name: 'TRACE /', parts: [`TRACE / HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'CONNECT', parts: [`CONNECT 127.0.0.1:1 HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'made-up method', parts: [`FROB /v0/entity?id=a HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    { name: 'lower-case method', parts: [`get /v0/health HTTP/1.1${CRLF}${HOST}${CRLF}`] },
    // Upgrades and the internode paths.
    {
      name: 'WebSocket upgrade on /v0/entity',
      parts: [
        `GET ${entity} HTTP/1.1${CRLF}${HOST}Connection: Upgrade${CRLF}Upgrade: websocket${CRLF}${CRLF}`,
      ],
    },
    { name: 'internode path without Upgrade', parts: [get('/v0/internode')] },
    {
      name: 'internode upgrade to another protocol',
      parts: [UPGRADE.replace('ringkv-internode/1', 'ringkv-internode/9')],
    },
    { name: 'internode: frame length 4 GiB', parts: [UPGRADE, frame(0x02, 1, Buffer.from('a'), 0xffffffff)] },
    {
      name: 'internode: frame length below the minimum',
      parts: [UPGRADE, frame(0x02, 1, Buffer.alloc(0), 2)],
    },
    { name: 'internode: unknown message type', parts: [UPGRADE, frame(0x7e, 1, junk(16))] },
    { name: 'internode: WRITE of an undecodable entry', parts: [UPGRADE, frame(0x01, 1, badEntry)] },
    { name: 'internode: unsolicited answer frame', parts: [UPGRADE, frame(0x81, 7, Buffer.alloc(0))] },
    { name: 'internode: anti-entropy junk', parts: [UPGRADE, frame(0x05, 2, junk(64))] },
    {
      name: 'internode: LEAVING from a stranger',
      parts: [UPGRADE, frame(0x06, 3, Buffer.from('http://127.0.0.1:1'))],
    },
    { name: 'internode: random bytes after the upgrade', parts: [UPGRADE, junk(2048)] },
    {
      name: 'internode: frame cut short, then end',
      parts: [UPGRADE, frame(0x02, 1, Buffer.from('key')).subarray(0, 8)],
      end: true,
    },
    {
      name: 'internode HTTP: write of an undecodable entry',
      parts: [
        `POST /v0/internode/write HTTP/1.1${CRLF}${HOST}Content-Length: ${badEntry.length}${CRLF}${CRLF}`,
        badEntry,
      ],
    },
    { name: 'internode HTTP: scan with a bad limit', parts: [get('/v0/internode/scan?start=&limit=abc')] },
  ];
}

/** Sends one probe on a new connection and classifies what came back (bounded by ANSWER_WAIT_MS). */
export async function sendProbe(port: number, probe: Probe): Promise<ProbeOutcome> {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = Buffer.alloc(0);
  let closed = false;
  let connectError: string | undefined;
  const closedPromise = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closed = true;
      resolve();
    });
  });
  socket.on('error', (err) => {
    connectError ??= err.message;
  });
  let lastDataMs = Date.now();
  socket.on('data', (chunk: Buffer) => {
    lastDataMs = Date.now();
    if (received.length < RECEIVE_BYTES_MAX) received = Buffer.concat([received, chunk]);
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  for (const [i, part] of probe.parts.entries()) {
    if (closed) break;
    if (i > 0 && probe.gapMs !== undefined) await sleep(probe.gapMs);
    await new Promise<void>((resolve) => socket.write(part, () => resolve()));
  }
  if (probe.end === true && !closed) socket.end();
  // Done at the close, or once an answer came and nothing more for QUIET_MS (a keep-alive
  // connection stays open after a 4xx), or at the deadline (a node waiting for the rest).
  const deadline = Date.now() + ANSWER_WAIT_MS;
  for (let step = 0; !closed && Date.now() < deadline && step < ANSWER_WAIT_MS / POLL_MS + 1; step++) {
    if (answered(received) && Date.now() - lastDataMs >= QUIET_MS) break;
    await Promise.race([closedPromise, sleep(POLL_MS)]);
  }
  const stillOpen = !closed;
  socket.destroy();
  const statuses = statusesOf(received);
  const frames = statuses.includes(101) ? framesAfterUpgrade(received) : [];
  const detail =
    `${statuses.length > 0 ? statuses.join(',') : 'no answer'}` +
    `${frames.length > 0 ? ` + frames ${frames.map((t) => `0x${t.toString(16)}`).join(',')}` : ''}` +
    `, ${stillOpen ? 'left open' : 'closed'}` +
    `${connectError !== undefined && statuses.length === 0 ? ` (${connectError})` : ''}`;
  return { probe: probe.name, class: classify(statuses, frames, stillOpen), detail };
}

function statusesOf(received: Buffer): number[] {
  return [...received.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}

/** A final status came, or frames after an Upgrade. */
function answered(received: Buffer): boolean {
  const statuses = statusesOf(received);
  return (
    statuses.some((status) => status >= 200) ||
    (statuses.includes(101) && framesAfterUpgrade(received).length > 0)
  );
}

/** The message types of the whole frames the node sent after its 101 (docs/formats/internode.md). */
function framesAfterUpgrade(received: Buffer): number[] {
  const headEnd = received.indexOf('\r\n\r\n');
  if (headEnd < 0) return [];
  const types: number[] = [];
  // Bounded by the bytes received: each frame moves on by at least its 4-byte length field.
  for (let at = headEnd + 4; at + 9 <= received.length && types.length < 100; ) {
    const length = received.readUInt32BE(at);
    types.push(received[at + 4]!);
    at += 4 + Math.max(length, 5);
  }
  return types;
}

/** An internode ERROR frame (0xff) is the protocol's 4xx. */
const ERROR_FRAME = 0xff;

function classify(statuses: readonly number[], frames: readonly number[], stillOpen: boolean): ProbeClass {
  const final = statuses.filter((s) => s !== 100 && s !== 101);
  if (final.some((s) => s >= 500)) return 'server-error';
  if (final.some((s) => s >= 400) || frames.includes(ERROR_FRAME)) return 'rejected';
  if (final.length > 0 || frames.length > 0) return 'accepted';
  return stillOpen ? 'no-answer' : 'closed';
}
