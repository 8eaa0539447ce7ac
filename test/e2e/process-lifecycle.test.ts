/**
 * The `serve` process as an operator sees it: refused flags, ports and
 * directories with one line and a non-zero exit, the data-directory lock,
 * a graceful SIGTERM, and recovery after kill -9.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { entityPath, httpRequest, RawConnection } from '../support/http-client.js';
import {
  killAllStarted,
  killNode,
  MAIN_SCRIPT,
  runCli,
  sleep,
  startNode,
  stopNode,
} from '../support/node-process.js';
import { freePort, freePorts } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** One line on stderr, nothing that looks like a stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

describe('ringkv serve as a process', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  describe('refuses bad invocations with one line and a non-zero exit', () => {
    const cases: [string, (dir: string) => string[], RegExp][] = [
      [
        'an unknown flag',
        (dir) => ['serve', '--url', 'http://127.0.0.1:1', '--data', dir, '--bogus'],
        /--bogus/,
      ],
      ['a missing --url', (dir) => ['serve', '--data', dir], /Missing --url/],
      ['a missing --data', () => ['serve', '--url', 'http://127.0.0.1:1'], /Missing --data/],
      ['a flag without its value', (dir) => ['serve', '--data', dir, '--url'], /--url/],
      ['a malformed --url', (dir) => ['serve', '--url', 'not a url', '--data', dir], /Bad --url/],
      ['an https --url', (dir) => ['serve', '--url', 'https://127.0.0.1:1', '--data', dir], /Bad --url/],
      [
        'a bad --sync',
        (dir) => ['serve', '--url', 'http://127.0.0.1:1', '--data', dir, '--sync', 'maybe'],
        /Bad --sync/,
      ],
      [
        'a bad --max-value-bytes',
        (dir) => ['serve', '--url', 'http://127.0.0.1:1', '--data', dir, '--max-value-bytes', 'lots'],
        /Bad --max-value-bytes/,
      ],
      [
        'a bad --anti-entropy-interval',
        (dir) => ['serve', '--url', 'http://127.0.0.1:1', '--data', dir, '--anti-entropy-interval', '1s'],
        /Bad --anti-entropy-interval/,
      ],
      [
        'a --cluster without this node',
        (dir) => ['serve', '--url', 'http://127.0.0.1:1', '--data', dir, '--cluster', 'http://127.0.0.1:2'],
        /Bad --cluster/,
      ],
      [
        'a stray argument',
        (dir) => ['serve', 'extra', '--url', 'http://127.0.0.1:1', '--data', dir],
        /extra/,
      ],
      ['an unknown command', () => ['launch'], /Unknown command/],
    ];
    for (const [name, args, pattern] of cases) {
      it(name, async () => {
        const result = await runCli(args(await makeTempDir()));
        assert.notEqual(result.code, 0);
        assert.equal(result.signal, null);
        assertOneLine(result.stderr, pattern);
      });
    }

    it('refuses an unknown --compression with exit 2, naming the codecs', async () => {
      const dir = await makeTempDir();
      const result = await runCli([
        'serve',
        '--url',
        'http://127.0.0.1:1',
        '--data',
        dir,
        '--compression',
        'zstd',
      ]);
      assert.equal(result.code, 2);
      assertOneLine(result.stderr, /Bad --compression: expected lz4, deflate, none, got "zstd"/);
    });

    it('refuses a negative number with exit 2, naming the flag and what it takes', async () => {
      const dir = await makeTempDir();
      for (const flag of ['--request-timeout', '--anti-entropy-interval']) {
        const result = await runCli(['serve', '--url', 'http://127.0.0.1:1', '--data', dir, flag, '-5']);
        assert.equal(result.code, 2, result.stderr);
        assertOneLine(result.stderr, new RegExp(`^ringkv: Bad ${flag}: expected a whole number, got "-5"$`));
      }
    });

    it('refuses a --cluster that names one node twice under two spellings, with exit 2', async () => {
      const [port, other] = await freePorts(2);
      const self = `http://127.0.0.1:${port}`;
      for (const alias of [`http://localhost:${port}`, `http://[::ffff:127.0.0.1]:${port}`]) {
        const result = await runCli([
          'serve',
          '--url',
          self,
          '--data',
          await makeTempDir(),
          '--cluster',
          `${self},http://127.0.0.1:${other},${alias}`,
        ]);
        assert.equal(result.code, 2, result.stderr);
        const spelled = new URL(alias).origin;
        assert.equal(
          result.stderr,
          `ringkv: Bad --cluster: ${self} and ${spelled} are the same node (both reach 127.0.0.1 port ${port})\n`,
        );
      }
    });

    it('prints usage for --help and exits 0', async () => {
      const result = await runCli(['serve', '--help']);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /--url URL/);
      assert.match(result.stdout, /--max-value-bytes/);
      assert.match(result.stdout, /--compression CODEC .*lz4, deflate, none \(default lz4\)/);
    });
  });

  it('refuses an unusable data directory', async () => {
    const file = join(await makeTempDir(), 'a-file');
    await writeFile(file, 'not a directory');
    const result = await runCli(['serve', '--url', `http://127.0.0.1:${await freePort()}`, '--data', file]);
    assert.notEqual(result.code, 0);
    assertOneLine(result.stderr, /Cannot use data directory .*a-file/);
  });

  it('refuses a port in use, and a second process on a locked data directory', async () => {
    const dir = await makeTempDir();
    const first = await startNode({ dataDir: dir });

    // A data directory that does not exist yet is not created for a start refused for its port.
    const unmade = join(await makeTempDir(), 'not-yet');
    const samePort = await runCli(['serve', '--url', first.url, '--data', unmade]);
    assert.notEqual(samePort.code, 0);
    assertOneLine(samePort.stderr, /Cannot listen on 127\.0\.0\.1:\d+: the address is in use/);
    await assert.rejects(stat(unmade), { code: 'ENOENT' }, 'the refused start made its data directory');

    const sameDir = await runCli(['serve', '--url', `http://127.0.0.1:${await freePort()}`, '--data', dir]);
    assert.notEqual(sameDir.code, 0);
    assertOneLine(sameDir.stderr, new RegExp(`Data directory .* is locked by process ${first.pid}$`));

    // The refused processes did not disturb the first one.
    assert.equal((await httpRequest(`${first.url}/v0/status`)).status, 200);
    assert.equal((await stopNode(first)).code, 0);
  });

  it('refuses a port in use in a cluster too with one line, before writing anything in the data directory', async () => {
    const first = await startNode({ dataDir: await makeTempDir() });
    try {
      const dir = await makeTempDir();
      const peer = `http://127.0.0.1:${await freePort()}`;
      const result = await runCli([
        'serve',
        '--url',
        first.url,
        '--data',
        dir,
        '--cluster',
        `${first.url},${peer}`,
        '--log-format',
        'json',
      ]);
      assert.notEqual(result.code, 0);
      assertOneLine(result.stderr, /^ringkv: Cannot listen on 127\.0\.0\.1:\d+: the address is in use$/);
      // Nothing of a cluster's (membership, hints, anti-entropy index) was made for a start that could not listen.
      assert.deepEqual(await readdir(dir), []);
    } finally {
      assert.equal((await stopNode(first)).code, 0);
    }
  });

  it('exits 0 on SIGTERM, releases the lock, and the data is readable after a restart', async () => {
    const dir = await makeTempDir();
    const node = await startNode({ dataDir: dir });
    for (let i = 0; i < 20; i++) {
      const put = await httpRequest(`${node.url}${entityPath(`term-${i}`)}`, {
        method: 'PUT',
        body: `value ${i}`,
      });
      assert.equal(put.status, 201);
    }
    await httpRequest(`${node.url}${entityPath('term-3')}`, { method: 'DELETE' });
    const exit = await stopNode(node, { signal: 'SIGTERM', timeoutMs: 10_000 });
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(existsSync(join(dir, 'LOCK')), false);

    const again = await startNode({ dataDir: dir, port: node.port });
    for (let i = 0; i < 20; i++) {
      const read = await httpRequest(`${again.url}${entityPath(`term-${i}`)}`);
      if (i === 3) {
        assert.equal(read.status, 404);
      } else {
        assert.equal(read.status, 200, `term-${i} after restart`);
        assert.equal(read.body.toString(), `value ${i}`);
      }
    }
    assert.deepEqual(await stopNode(again, { signal: 'SIGINT' }), { code: 0, signal: null });
  });

  it('finishes a request in flight when SIGTERM arrives', async () => {
    const node = await startNode({ dataDir: await makeTempDir() });
    const conn = await RawConnection.open(node.port);
    try {
      // Expect: 100-continue makes the server say when it has the request head, so the
      // signal is sent while the request is in flight for sure.
      await conn.write(
        `PUT ${entityPath('in-flight')} HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n`,
      );
      assert.equal((await conn.readAnswer()).status, 100);
      node.child.kill('SIGTERM');
      await sleep(200);
      await conn.write('5\r\nfirst\r\n6\r\n+later\r\n0\r\n\r\n');
      const answer = await conn.readAnswer();
      assert.equal(answer.status, 201);
      assert.equal(answer.headers.connection, 'close');
    } finally {
      conn.close();
    }
    assert.deepEqual(await stopNode(node, { timeoutMs: 10_000 }), { code: 0, signal: null });
  });

  for (const sync of ['on', 'off'])
    it(`recovers every acknowledged write after kill -9, with --sync ${sync}`, async () => {
      const dir = await makeTempDir();
      // --sync off acknowledges once the write reached the operating system: that survives kill -9 too.
      const node = await startNode({ dataDir: dir, args: ['--sync', sync] });
      const acknowledged = new Map<string, string>();
      let stop = false;
      // Four writers keep PUTs in flight while the node is killed.
      const writer = async (id: number) => {
        for (let i = 0; !stop && i < 100_000; i++) {
          const key = `kill-${id}-${i}`;
          const value = `value ${id} ${i} ${'x'.repeat(i % 200)}`;
          try {
            const answer = await httpRequest(`${node.url}${entityPath(key)}`, { method: 'PUT', body: value });
            if (answer.status === 201) acknowledged.set(key, value);
          } catch {
            return; // The node is gone.
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      for (let attempt = 0; attempt < 200 && acknowledged.size < 400; attempt++) await sleep(25);
      assert.ok(acknowledged.size >= 400, `only ${acknowledged.size} writes acknowledged`);
      await killNode(node);
      stop = true;
      await Promise.all(writers);
      const snapshot = new Map(acknowledged);

      const again = await startNode({ dataDir: dir, port: node.port, readyTimeoutMs: 30_000 });
      let missing = 0;
      for (const [key, value] of snapshot) {
        const read = await httpRequest(`${again.url}${entityPath(key)}`);
        if (read.status !== 200 || read.body.toString() !== value) missing++;
      }
      assert.equal(missing, 0, `${missing} of ${snapshot.size} acknowledged writes lost`);
      assert.equal((await stopNode(again)).code, 0);
    });

  it('starts right after a kill -9 whose process is not yet reaped (a zombie still holding its PID)', {
    skip: !existsSync('/proc/self/stat') && 'no /proc',
  }, async () => {
    const dir = await makeTempDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // sh starts the node in the background, prints its PID and becomes a `sleep` that never
    // waits for it: once killed, the node stays a zombie, as under a supervisor that restarts
    // a node before it reaps the old one. Only `parent` and the node it started are ended here.
    const parent = spawn(
      'sh',
      [
        '-c',
        '"$0" "$@" >/dev/null 2>&1 & echo $!; exec sleep 60',
        process.execPath,
        MAIN_SCRIPT,
        'serve',
        '--url',
        url,
        '--data',
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let pid: number | undefined;
    try {
      let output = '';
      parent.stdout!.setEncoding('utf8');
      for await (const chunk of parent.stdout!) {
        output += chunk;
        if (output.includes('\n')) break;
      }
      pid = Number(output.trim());
      assert.ok(Number.isInteger(pid) && pid > 0, `the node's PID: ${JSON.stringify(output)}`);
      let up = false;
      for (let attempt = 0; attempt < 150 && !up; attempt++) {
        up = await httpRequest(`${url}/v0/status`, { timeoutMs: 1000 }).then(
          (answer) => answer.status === 200,
          () => false,
        );
        if (!up) await sleep(100);
      }
      assert.ok(up, 'the first node started');
      const put = await httpRequest(`${url}${entityPath('before-the-kill')}`, {
        method: 'PUT',
        body: 'kept',
      });
      assert.equal(put.status, 201);

      // Only once sh has become the `sleep` that never reaps, so that the node stays a zombie.
      let parentComm = '';
      for (let attempt = 0; attempt < 500 && parentComm !== 'sleep'; attempt++) {
        parentComm = (await readFile(`/proc/${parent.pid}/comm`, 'utf8')).trim();
        if (parentComm !== 'sleep') await sleep(10);
      }
      assert.equal(parentComm, 'sleep');
      process.kill(pid, 'SIGKILL');
      let state = '';
      for (let attempt = 0; attempt < 500 && state !== 'Z'; attempt++) {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        state = stat.charAt(stat.lastIndexOf(')') + 2);
        if (state !== 'Z') await sleep(10);
      }
      assert.equal(state, 'Z', 'the killed node is a zombie');
      assert.equal(await readFile(join(dir, 'LOCK'), 'utf8'), `${pid}\n`, 'its lock is still there');

      const again = await startNode({ dataDir: dir, port });
      assert.equal(await readFile(join(dir, 'LOCK'), 'utf8'), `${again.pid}\n`, 'the lock was taken over');
      const read = await httpRequest(`${again.url}${entityPath('before-the-kill')}`);
      assert.equal(read.status, 200);
      assert.equal(read.body.toString(), 'kept');
      assert.deepEqual(await stopNode(again), { code: 0, signal: null });
    } finally {
      // The node first: its parent is still there, so the PID is still its own (a no-op on a zombie).
      if (pid !== undefined && pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      parent.kill('SIGKILL');
      if (parent.exitCode === null && parent.signalCode === null) await once(parent, 'exit');
    }
  });
});
