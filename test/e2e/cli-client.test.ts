/**
 * The command-line client (ringkv get, put, delete, scan, status, ring, help,
 * --version) as a user runs it, against a real 2-node cluster: output byte
 * for byte, stdin and file values, --json, every exit code (0 done, 1 not
 * found, 2 bad usage, 3 unavailable), failover across --url's list, and one
 * plain line on stderr for every failure.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertFailed, ringkv } from '../support/cli.js';
import { startCluster, type TestCluster, waitPeerState } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, sleep, stopNode } from '../support/node-process.js';
import { freePort } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

describe('ringkv client commands on a 2-node cluster', () => {
  let cluster: TestCluster;
  let url: string[];

  before(async () => {
    cluster = await startCluster({ count: 2, args: ['--sync', 'off', '--anti-entropy-interval', '0'] });
    url = ['--url', cluster.urls[0]!];
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('put, get and delete: exit 0 when done, 1 when not found, the value byte for byte', async () => {
    assert.equal((await ringkv(['put', 'greeting', 'hello', ...url])).code, 0);
    const got = await ringkv(['get', 'greeting', ...url]);
    assert.equal(got.code, 0);
    assert.deepEqual(got.stdout, Buffer.from('hello'));
    assert.equal((await ringkv(['delete', 'greeting', ...url])).code, 0);
    const gone = await ringkv(['get', 'greeting', ...url]);
    assertFailed(gone, 1, /^ringkv: Not found: "greeting"$/);
    assert.equal(gone.stdout.length, 0);
    // A key that starts with '-' goes after `--`.
    assert.equal((await ringkv(['put', ...url, '--', '-dash', '-v'])).code, 0);
    assert.equal((await ringkv(['get', ...url, '--', '-dash'])).stdout.toString(), '-v');
  });

  it('put takes the value from stdin (-) and from --file, bytes as they are', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.equal((await ringkv(['put', 'stdin-key', '-', ...url], bytes)).code, 0);
    assert.deepEqual((await ringkv(['get', 'stdin-key', ...url])).stdout, bytes);

    const file = join(await makeTempDir(), 'value.bin');
    await writeFile(file, bytes.subarray(100));
    assert.equal((await ringkv(['put', 'file-key', '--file', file, ...url])).code, 0);
    assert.deepEqual((await ringkv(['get', 'file-key', ...url])).stdout, bytes.subarray(100));

    assertFailed(await ringkv(['put', 'k', '--file', join(file, 'nope'), ...url]), 2, /Cannot read --file/);
    assertFailed(await ringkv(['put', 'k', 'v', '--file', file, ...url]), 2, /Give the value once/);
    assertFailed(await ringkv(['put', 'k', ...url]), 2, /Give the value once/);
  });

  it('--ttl, --ack and --from reach the node; bad values are usage errors (exit 2)', async () => {
    assert.equal((await ringkv(['put', 'ttl-key', 'v', '--ttl', '2000', ...url])).code, 0);
    // The node set the expiry before it answered: it is due by 2 s after the answer, however slow the command was.
    const answeredAt = Date.now();
    // Read here, not by a second process: starting one can take 2 s on a loaded machine.
    assert.equal((await httpRequest(`${cluster.urls[0]}${entityPath('ttl-key')}`)).status, 200);
    await sleep(Math.max(0, answeredAt + 2_100 - Date.now()));
    assert.equal((await ringkv(['get', 'ttl-key', ...url])).code, 1);

    assert.equal((await ringkv(['put', 'acked', 'v', '--ack', '2', '--from', '2', ...url])).code, 0);
    assert.equal((await ringkv(['get', 'acked', '--ack', '1', '--from', '1', ...url])).code, 0);
    assertFailed(
      await ringkv(['get', 'acked', '--ack', '3', '--from', '2', ...url]),
      2,
      /^ringkv: Bad request: 400 /,
    );
    assertFailed(await ringkv(['get', 'acked', '--from', '3', ...url]), 2, /^ringkv: Bad request: 400 /);
    assertFailed(await ringkv(['get', 'acked', '--ack', '0', ...url]), 2, /Bad --ack/);
    assertFailed(await ringkv(['put', 'k', 'v', '--ttl', '1s', ...url]), 2, /Bad --ttl/);
    // A negative number is the flag's value, refused by the flag's own check (not parseArgs' "ambiguous").
    for (const [flag, command] of [
      ['--timeout', ['get', 'k']],
      ['--ack', ['get', 'k']],
      ['--ttl', ['put', 'k', 'v']],
    ] as const) {
      assertFailed(
        await ringkv([...command, flag, '-1', ...url]),
        2,
        new RegExp(`^ringkv: Bad ${flag}: expected a positive integer, got "-1"$`),
      );
    }
    assertFailed(await ringkv(['get', 'k'.repeat(2_000), ...url]), 2, /414/);
  });

  it('scan: key TAB value per line, escaped; --json lines; --local', async () => {
    await ringkv(['put', 'scan:a', 'one', ...url]);
    // An ESC sequence (clear the screen) reaches the terminal escaped, never raw.
    await ringkv(['put', 'scan:b', 'two\nlines\tand \\ \x1b[2J', ...url]);
    await ringkv(['put', 'scan:c', '-', ...url], Buffer.from([0xff, 0x00]));
    await ringkv(['put', 'scan:d', '', ...url]);
    const text = await ringkv(['scan', 'scan:', 'scan:d', ...url]);
    assert.equal(text.code, 0);
    assert.deepEqual(
      text.stdout,
      Buffer.concat([
        Buffer.from('scan:a\tone\nscan:b\ttwo\\nlines\\tand \\\\ \\x1b[2J\nscan:c\t'),
        // A byte that is not UTF-8 as it came; a control byte as \xHH.
        Buffer.from([0xff]),
        Buffer.from('\\x00\n'),
      ]),
    );
    const json = await ringkv(['scan', 'scan:', 'scan;', '--json', ...url]);
    assert.equal(json.code, 0);
    assert.deepEqual(
      json.stdout
        .toString()
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line)),
      [
        { key: 'scan:a', value: 'one' },
        { key: 'scan:b', value: 'two\nlines\tand \\ \x1b[2J' },
        { key: 'scan:c', value: Buffer.from([0xff, 0x00]).toString('base64'), valueBase64: true },
        { key: 'scan:d', value: '' },
      ],
    );
    const local = await ringkv(['scan', 'scan:', 'scan:b', '--local', '--url', cluster.urls[1]!]);
    assert.equal(local.stdout.toString(), 'scan:a\tone\n', 'from=2: both nodes hold every key');
    assertFailed(await ringkv(['scan', ...url]), 2, /Missing arguments: expected ringkv scan START \[END\]/);
  });

  it('status: a summary, or the JSON with --json', async () => {
    const pretty = await ringkv(['status', ...url]);
    assert.equal(pretty.code, 0);
    assert.match(pretty.stdout.toString(), new RegExp(`^node +${cluster.urls[0]} \\(ready\\)$`, 'm'));
    assert.match(pretty.stdout.toString(), new RegExp(`^peers +${cluster.urls[1]} up`, 'm'));
    const json = await ringkv(['status', '--json', ...url]);
    const status = JSON.parse(json.stdout.toString()) as { node: string; ready: boolean; cluster: string[] };
    assert.equal(status.node, cluster.urls[0]);
    assert.equal(status.ready, true);
    assert.deepEqual([...status.cluster].sort(), [...cluster.urls].sort());
  });

  it('ring: the members and their state; with KEY its replicas, the first of which holds a from=1 write', async () => {
    const members = await ringkv(['ring', ...url]);
    assert.equal(members.code, 0);
    const lines = members.stdout.toString().trimEnd().split('\n');
    assert.deepEqual(
      lines.map((line) => line.split(/ +/).slice(0, 2)),
      [...cluster.urls].sort().map((u) => [u, 'up']),
    );

    for (const key of ['placed-1', 'placed-2', 'placed-3']) {
      const ring = JSON.parse((await ringkv(['ring', key, '--json', ...url])).stdout.toString()) as {
        replicas: string[];
      };
      assert.equal(ring.replicas.length, 2);
      assert.equal((await ringkv(['put', key, 'v', '--ack', '1', '--from', '1', ...url])).code, 0);
      const [primary, other] = ring.replicas as [string, string];
      const onPrimary = await ringkv(['scan', key, '--local', '--url', primary]);
      const onOther = await ringkv(['scan', key, '--local', '--url', other]);
      assert.equal(onPrimary.stdout.toString().split('\n')[0], `${key}\tv`, `${key} on ${primary}`);
      assert.ok(!onOther.stdout.toString().startsWith(`${key}\t`), `${key} not on ${other}`);
    }
    const first = await ringkv(['ring', 'placed-1', '--from', '1', ...url]);
    assert.match(first.stdout.toString(), /^1 +http:\/\/127\.0\.0\.1:\d+ +up/);
    assert.equal(first.stdout.toString().trimEnd().split('\n').length, 1);
    assertFailed(
      await ringkv(['ring', 'k', '--from', '3', ...url]),
      2,
      /Bad --from: 3 is more than the 2 members/,
    );
  });

  it('help, --help and --version', async () => {
    const version = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'),
    ) as { version: string };
    const printed = await ringkv(['--version']);
    assert.equal(printed.code, 0);
    assert.equal(printed.stdout.toString(), `${version.version}\n`);

    const help = await ringkv(['help']);
    assert.equal(help.code, 0);
    for (const command of ['serve', 'cluster', 'get', 'put', 'delete', 'scan', 'status', 'ring']) {
      assert.match(help.stdout.toString(), new RegExp(`^  ${command} `, 'm'));
    }
    for (const args of [
      ['help', 'put'],
      ['put', '--help'],
    ]) {
      const put = await ringkv(args);
      assert.equal(put.code, 0);
      assert.match(put.stdout.toString(), /^Usage: ringkv put KEY VALUE/);
      assert.match(put.stdout.toString(), /--ttl MS/);
    }
    assert.match((await ringkv(['help', 'serve'])).stdout.toString(), /--data DIR/);
    assertFailed(await ringkv(['help', 'nope']), 2, /^ringkv: Unknown command "nope"/);
    assertFailed(await ringkv(['nope']), 2, /^ringkv: Unknown command "nope"/);
    assertFailed(await ringkv(['get', 'k', '--bogus']), 2, /^ringkv: Unknown option '--bogus'$/);
    assertFailed(await ringkv(['get', 'k', '--url', 'ftp://x']), 2, /Bad node URL/);
  });

  it('unavailable is exit 3; --url with several nodes fails over', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    assertFailed(await ringkv(['get', 'k', '--url', refused]), 3, /^ringkv: Unavailable: .*ECONNREFUSED/);
    assert.equal((await ringkv(['put', 'over', 'v', '--url', `${refused},${cluster.urls[1]}`])).code, 0);
    const got = await ringkv(['get', 'over', '--url', `${refused},${cluster.urls[0]}`]);
    assert.equal(got.stdout.toString(), 'v');

    await stopNode(cluster.nodes[1]!);
    assert.ok(await waitPeerState(cluster.urls[0]!, cluster.urls[1]!, 'down'));
    assertFailed(await ringkv(['get', 'over', '--ack', '2', ...url]), 3, /^ringkv: Unavailable: 504 /);
    assert.equal((await ringkv(['get', 'over', '--ack', '1', ...url])).code, 0);
    const ring = await ringkv(['ring', ...url]);
    assert.match(ring.stdout.toString(), new RegExp(`^${cluster.urls[1]} +down`, 'm'));
    assertFailed(await ringkv(['status', '--url', cluster.urls[1]!]), 3, /^ringkv: Unavailable: /);
  });
});
