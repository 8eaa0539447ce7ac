/**
 * What a node sends never drives the terminal: `ringkv` run against a
 * stand-in node whose keys, values, status document and reasons hold ESC
 * sequences (clear the screen, set the window title) and C1 controls (CSI,
 * U+009B) prints them as visible escapes (terminal-safe.ts), on stdout and
 * on stderr, in text and in --json. The stand-in listens on 127.0.0.1 port 0
 * in this process.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { answer, type Handler } from '../../test/support/answers.js';
import { assertFailed, ringkv } from '../../test/support/cli.js';

/** Clears the screen, sets the window title, then CSI in its C1 form: red. */
const HOSTILE = '\x1b[2J\x1b]0;owned\x07\u009b31m';
/** HOSTILE as terminalSafe writes it. */
const HOSTILE_SHOWN = '\\x1b[2J\\x1b]0;owned\\x07\\x9b31m';
/** HOSTILE's UTF-8 bytes as scan's text line writes them (the C1 control as its two bytes). */
const HOSTILE_LINE = '\\x1b[2J\\x1b]0;owned\\x07\\xc2\\x9b31m';
/** HOSTILE as JSON.stringify then jsonSafe write it. */
const HOSTILE_JSON = '\\u001b[2J\\u001b]0;owned\\u0007\\u009b31m';

/** The control characters of `output` a terminal would act on, but for those `allowed` (line ends). */
function controlsIn(output: Buffer | string, allowed: string): string[] {
  const text = typeof output === 'string' ? output : output.toString('utf8');
  return [...text].filter((c) => {
    const code = c.codePointAt(0)!;
    return (code < 0x20 || (code >= 0x7f && code <= 0x9f)) && !allowed.includes(c);
  });
}

const node = 'http://127.0.0.1:1';

/** A status document whose node-provided strings hold HOSTILE: peer URLs and states, the move. */
const statusDocument = {
  node: `${node}${HOSTILE}`,
  ready: true,
  cluster: [`${node}${HOSTILE}`, `http://127.0.0.1:2${HOSTILE}`],
  clusterSize: 2,
  store: {
    peers: { [`http://127.0.0.1:2${HOSTILE}`]: `up${HOSTILE}` },
    membership: {
      epoch: `7${HOSTILE}`,
      move: `decommission ${HOSTILE}`,
      newOwners: [],
      members: [
        { url: `${node}${HOSTILE}`, state: 'normal', share: 0.5 },
        { url: `http://127.0.0.1:2${HOSTILE}`, state: `leaving${HOSTILE}`, share: 0.5, futureShare: 0 },
      ],
    },
  },
};

const hostileNode: Handler = (req, res) => {
  const path = req.url!;
  if (path.startsWith('/v0/entities')) {
    const lines = [
      { key: `k${HOSTILE}`, value: `v${HOSTILE}` },
      { key: 'plain', value: 'tab\there ü' },
    ];
    return answer(200, lines.map((line) => `${JSON.stringify(line)}\n`).join(''), {
      'content-type': 'application/x-ndjson',
      'transfer-encoding': 'chunked',
    })(req, res);
  }
  if (path.startsWith('/v0/status')) {
    return answer(200, JSON.stringify(statusDocument), { 'content-type': 'application/json' })(req, res);
  }
  if (path.startsWith('/v0/admin/snapshot')) {
    return answer(400, `Bad dir: ${HOSTILE}\nsecond line`)(req, res);
  }
  // Any key: refused with a reason that holds HOSTILE.
  answer(400, `Bad key: ${HOSTILE}`)(req, res);
};

describe('text a node sends is printed with its controls escaped', () => {
  let server: Server;
  let url: string[];
  before(async () => {
    server = createServer(hostileNode);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = ['--url', `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  it('scan: an ESC or a C1 control in a key or value comes out as \\xHH, reversible', async () => {
    const run = await ringkv(['scan', '', ...url]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.toString('utf8'), `k${HOSTILE_LINE}\tv${HOSTILE_LINE}\nplain\ttab\\there ü\n`);
    assert.deepEqual(controlsIn(run.stdout, '\t\n'), []);
  });

  it('scan --json: JSON escapes the C0 controls, and the C1 ones too', async () => {
    const run = await ringkv(['scan', '', '--json', ...url]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout.toString('utf8'),
      `{"key":"k${HOSTILE_JSON}","value":"v${HOSTILE_JSON}"}\n{"key":"plain","value":"tab\\there ü"}\n`,
    );
    assert.deepEqual(controlsIn(run.stdout, '\n'), []);
  });

  it("status: the node's URL, peers and their states come out escaped", async () => {
    const run = await ringkv(['status', ...url]);
    assert.equal(run.code, 0, run.stderr);
    const text = run.stdout.toString('utf8');
    assert.deepEqual(controlsIn(text, '\n'), [], text);
    assert.match(text, new RegExp(`^node +${escapeRegExp(`${node}${HOSTILE_SHOWN}`)} \\(ready\\)$`, 'm'));
    assert.match(
      text,
      new RegExp(`^peers +${escapeRegExp(`http://127.0.0.1:2${HOSTILE_SHOWN} up${HOSTILE_SHOWN}`)}$`, 'm'),
    );
    const json = await ringkv(['status', '--json', ...url]);
    assert.deepEqual(controlsIn(json.stdout, '\n'), []);
    assert.deepEqual(JSON.parse(json.stdout.toString('utf8')), statusDocument, 'the same document');
  });

  it('ring: members, states and the move under way come out escaped', async () => {
    const run = await ringkv(['ring', ...url]);
    assert.equal(run.code, 0, run.stderr);
    const text = run.stdout.toString('utf8');
    assert.deepEqual(controlsIn(text, '\n'), [], text);
    assert.ok(text.includes(`http://127.0.0.1:2${HOSTILE_SHOWN}  up${HOSTILE_SHOWN}`), text);
    assert.ok(text.includes(`leaving${HOSTILE_SHOWN}`), text);
    assert.ok(
      text.endsWith(`epoch 7${HOSTILE_SHOWN}: move under way (decommission ${HOSTILE_SHOWN})\n`),
      text,
    );
    const json = await ringkv(['ring', '--json', ...url]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(controlsIn(json.stdout, '\n'), []);
    assert.equal(
      (JSON.parse(json.stdout.toString('utf8')) as { move: string }).move,
      `decommission ${HOSTILE}`,
    );
  });

  it("a node's reason for a failure is one escaped line on stderr", async () => {
    for (const args of [
      ['get', 'k'],
      ['put', 'k', 'v'],
    ]) {
      const run = await ringkv([...args, ...url]);
      assertFailed(
        run,
        2,
        new RegExp(`^ringkv: Bad request: 400 Bad key: ${escapeRegExp(HOSTILE_SHOWN)} \\(`),
      );
      assert.deepEqual(controlsIn(run.stderr, '\n'), []);
    }
    const snapshot = await ringkv(['snapshot', '--out', '/tmp/ringkv-never-written', ...url]);
    assertFailed(
      snapshot,
      2,
      new RegExp(`^ringkv: Snapshot failed: 400 Bad dir: ${escapeRegExp(HOSTILE_SHOWN)}$`),
    );
    assert.deepEqual(controlsIn(snapshot.stderr, '\n'), []);
  });

  it('an argument quoted in a usage error is escaped too', async () => {
    const run = await ringkv(['get', 'k', `--bogus${HOSTILE}`, ...url]);
    assertFailed(run, 2, /^ringkv: Unknown option '--bogus\\x1b\[2J/);
    assert.deepEqual(controlsIn(run.stderr, '\n'), []);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
