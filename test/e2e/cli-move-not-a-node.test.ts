/**
 * `ringkv decommission` and `ringkv cancel` against a server that is not a
 * ringkv node: it answers the internode upgrade with a plain 200 whose body
 * never ends. The command reports it on one line and exits, rather than
 * wait forever on a connection it has no more use for.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { killAllStarted, runCli } from '../support/node-process.js';

const sockets = new Set<Socket>();
let server: Server | undefined;

/** Answers every request 200 with the first bytes of a body it never finishes. */
async function endlessAnswers(): Promise<string> {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"a":'));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return `http://127.0.0.1:${address.port}`;
}

describe('membership commands against a server that is not a node', () => {
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server?.close(resolve));
    await killAllStarted();
  });

  it('decommission and cancel end with one line and exit 3, not hang on the open answer', async () => {
    const url = await endlessAnswers();
    for (const args of [
      ['decommission', '--url', url, '--timeout', '2000'],
      ['cancel', '--url', url],
    ]) {
      const started = Date.now();
      const run = await runCli(args, 20_000);
      const tookMs = Date.now() - started;
      assert.equal(run.code, 3, `${args[0]}: ${run.code} ${run.signal} after ${tookMs} ms: ${run.stderr}`);
      assert.ok(tookMs < 15_000, `${args[0]} took ${tookMs} ms`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(run.stderr, /^ringkv: .*answered the internode upgrade with 200/);
    }
  });
});
