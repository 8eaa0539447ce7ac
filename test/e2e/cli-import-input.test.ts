/**
 * `ringkv import` against a stand-in node that records each PUT and
 * answers it when the test says: a line that is not UTF-8 or is longer
 * than --max-line-bytes stops the import naming it; the input is read only
 * as fast as writes are answered; lines of one key are written one after
 * the other, in their order.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ringkv } from '../support/cli.js';
import { MAIN_SCRIPT } from '../support/node-process.js';
import { freePort } from '../support/ports.js';

interface Put {
  readonly key: string;
  readonly value: string;
  /** Answers the PUT with 201. */
  readonly answer: () => void;
}

const servers: Server[] = [];

/** A stand-in node on 127.0.0.1: each PUT goes to `onPut` once its body is read. */
async function standIn(onPut: (put: Put) => void): Promise<string> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (data: Buffer) => parts.push(data));
    req.on('end', () => {
      const key = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '';
      onPut({
        key,
        value: Buffer.concat(parts).toString(),
        answer: () => {
          res.writeHead(201, { 'content-type': 'text/plain' });
          res.end();
        },
      });
    });
  });
  servers.push(server);
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${port}`;
}

/** Resolves once `ready()` holds, or after `ms` at most (polled; the outcome is checked afterwards). */
async function until(ready: () => boolean, ms: number): Promise<void> {
  for (let waited = 0; waited < ms && !ready(); waited += 20) await sleep(20);
}

describe('import input', () => {
  after(() => {
    for (const server of servers) server.close();
  });

  it('a line that is not UTF-8 stops the import naming it, rather than storing a replaced key', async () => {
    const puts: string[] = [];
    const url = await standIn((put) => {
      puts.push(put.key);
      put.answer();
    });
    const input = Buffer.concat([
      Buffer.from('{"key":"good","value":"v"}\n{"key":"bad'),
      Buffer.from([0xff]),
      Buffer.from('","value":"v"}\n{"key":"never","value":"v"}\n'),
    ]);
    const run = await ringkv(['import', '--url', url], input);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^ringkv: Bad line 2: not UTF-8; imported 1 entries before it\n$/);
    assert.deepEqual(puts, ['good']);
  });

  it('a byte order mark before the first line is not part of its key', async () => {
    const puts: string[] = [];
    const url = await standIn((put) => {
      puts.push(`${put.key}=${put.value}`);
      put.answer();
    });
    const input = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('{"key":"first","value":"v"}\r\n{"key":"second","value":"w"}\n'),
    ]);
    const run = await ringkv(['import', '--url', url], input);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(puts, ['first=v', 'second=w']);
  });

  it('a line longer than --max-line-bytes stops it naming the line; CR LF ends a line', async () => {
    const puts: string[] = [];
    const url = await standIn((put) => {
      puts.push(`${put.key}=${put.value}`);
      put.answer();
    });
    const fits = JSON.stringify({ key: 'fits', value: 'v'.repeat(100 - 25) });
    assert.equal(fits.length, 100);
    const input = `${fits}\r\n{"key":"b","value":"w"}\r\n${'x'.repeat(100_000)}`;
    const run = await ringkv(['import', '--max-line-bytes', '100', '--url', url], input);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^ringkv: Bad line 3: longer than 100 bytes; imported 2 entries before it\n$/);
    assert.deepEqual(puts, [`fits=${'v'.repeat(75)}`, 'b=w']);
  });

  it('reads no further ahead than the writes in flight: a held write holds the input', async () => {
    const held: Put[] = [];
    const url = await standIn((put) => held.push(put));
    const child = spawn(process.execPath, [MAIN_SCRIPT, 'import', '--concurrency', '1', '--url', url], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
    });
    const exited = once(child, 'close');
    // 16 MiB of lines, far more than a pipe and a read buffer hold.
    const line = `${JSON.stringify({ key: 'k', value: 'v'.repeat(64 * 1024) })}\n`;
    const lines = 256;
    let consumed = false;
    child.stdin.on('error', () => {});
    child.stdin.end(line.repeat(lines), () => {
      consumed = true;
    });
    await until(() => held.length > 0, 10_000);
    assert.equal(held.length, 1);
    // While the one write allowed is not answered, the input must stay unread.
    await until(() => consumed, 2_000);
    const readAhead = consumed;
    for (let answered = 0; answered < lines && answered < 10_000; ) {
      if (held.length > answered) held[answered++]!.answer();
      else await sleep(5);
    }
    const [code] = await exited;
    assert.equal(code, 0, stderr);
    assert.equal(readAhead, false, 'the whole input was read while the first write was held');
    assert.match(stderr, new RegExp(`imported ${lines} entries`));
  });

  it('lines of one key are written one after the other, so that the last one stays', async () => {
    const seen: Put[] = [];
    let open = 0;
    let mostOpenOfA = 0;
    const url = await standIn((put) => {
      seen.push(put);
      if (put.key === 'a') mostOpenOfA = Math.max(mostOpenOfA, ++open);
    });
    const input = ['{"key":"a","value":"1"}', '{"key":"b","value":"x"}', '{"key":"a","value":"2"}'].join(
      '\n',
    );
    const run = ringkv(['import', '--concurrency', '16', '--url', url], input);
    await until(() => seen.some((put) => put.key === 'b'), 10_000);
    // A second write of a sent before the first is answered would arrive now.
    await until(() => seen.filter((put) => put.key === 'a').length > 1, 1_000);
    for (let answered = 0, rounds = 0; rounds < 2_000; rounds++) {
      while (answered < seen.length) {
        const put = seen[answered++]!;
        if (put.key === 'a') open--;
        put.answer();
      }
      if (answered === 3) break;
      await sleep(5);
    }
    const done = await run;
    assert.equal(done.code, 0, done.stderr);
    assert.equal(mostOpenOfA, 1, 'two writes of one key in flight at once');
    assert.deepEqual(
      seen.filter((put) => put.key === 'a').map((put) => put.value),
      ['1', '2'],
    );
  });
});
