/**
 * `ringkv snapshot` against nodes that misbehave (fake servers on loopback)
 * and with bad flags: --timeout bounds the wait (exit 3), an answer cut short
 * is one line and exit 4, a bad --url or --timeout is bad usage (exit 2).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAllStarted, runCli } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const servers: Server[] = [];
const sockets = new Set<Socket>();

/** A server on a free loopback port that does `answer` with each connection's first bytes. */
async function fakeNode(answer: (socket: Socket) => void): Promise<string> {
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => answer(socket));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return `http://127.0.0.1:${address.port}`;
}

describe('snapshot flags and failures', () => {
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await killAllStarted();
    await removeTempDirs();
  });

  it('--timeout bounds the wait for a node that never answers: exit 3', async () => {
    const url = await fakeNode(() => undefined);
    const out = join(await makeTempDir(), 'snap');
    const started = Date.now();
    const run = await runCli(['snapshot', '--url', url, '--out', out, '--timeout', '500'], 20_000);
    assert.equal(run.code, 3, run.stderr);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^ringkv: Timed out: .*500 ms/);
  });

  it('an answer cut short is one line and exit 4', async () => {
    const url = await fakeNode((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"dir":');
      setTimeout(() => socket.destroy(), 50);
    });
    const out = join(await makeTempDir(), 'snap');
    const run = await runCli(['snapshot', '--url', url, '--out', out, '--timeout', '5000']);
    assert.equal(run.code, 4, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^ringkv: Failed: .*cut short/);
    assert.equal(run.stdout, '');
  });

  it('a 200 that is not a snapshot report (another server on the port) is a failure, exit 4, not success', async () => {
    const html = '<html>hello</html>';
    const url = await fakeNode((socket) => {
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: ${html.length}\r\n\r\n${html}`,
      );
    });
    const out = join(await makeTempDir(), 'snap');
    const run = await runCli(['snapshot', '--url', url, '--out', out, '--timeout', '5000']);
    assert.equal(run.code, 4, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(
      run.stderr.trimEnd(),
      /^ringkv: Failed: .* answered 200 but not with a snapshot report: <html>hello<\/html>$/,
    );
    assert.equal(run.stdout, '');
  });

  it('a bad --url or --timeout is bad usage: exit 2, one line', async () => {
    const out = join(await makeTempDir(), 'snap');
    for (const args of [
      ['--url', '127.0.0.1:22001'],
      ['--url', 'http://127.0.0.1:99999'],
      ['--url', 'ftp://127.0.0.1:22001'],
      ['--timeout', '0'],
      ['--timeout', 'soon'],
    ]) {
      const run = await runCli(['snapshot', '--out', out, ...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(run.stderr, /^ringkv: Bad --(url|timeout)/, args.join(' '));
    }
  });
});
