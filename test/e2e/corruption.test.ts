/**
 * Corruption on disk is found by its checksum and named: a flipped byte in
 * a WAL record stops the node at start with the file and offset; a flipped
 * byte in an SSTable data block fails the reads that touch that block (500)
 * and the node logs the file and offset, while other keys keep working.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, killNode, runCli, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

after(async () => {
  await killAllStarted();
  await removeTempDirs();
});

async function flipByte(path: string, offset: number): Promise<void> {
  const data = await readFile(path);
  data[offset] = data[offset]! ^ 0xff;
  await writeFile(path, data);
}

async function filesEnding(dir: string, suffix: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith(suffix)).map((name) => join(dir, name));
}

test('a flipped byte in a WAL record stops the start with the file and offset', async () => {
  const dataDir = await makeTempDir();
  const node = await startNode({ dataDir });
  for (let i = 0; i < 20; i++) {
    const answer = await httpRequest(`${node.url}${entityPath(`key-${i}`)}`, {
      method: 'PUT',
      body: `value-number-${i}-${'x'.repeat(50)}`,
    });
    assert.equal(answer.status, 201);
  }
  await killNode(node);

  // Find the WAL holding the records and damage the value of the fifth one.
  let damaged: string | undefined;
  for (const path of await filesEnding(dataDir, '.log')) {
    const data = await readFile(path);
    const at = data.indexOf('value-number-4-');
    if (at >= 0) {
      await flipByte(path, at + 3);
      damaged = path;
    }
  }
  assert.ok(damaged, 'the WAL holds the acknowledged writes');

  const result = await runCli(['serve', '--url', node.url, '--data', dataDir]);
  assert.notEqual(result.code, 0);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  assert.match(lines[0]!, /Corruption/);
  assert.ok(lines[0]!.includes(damaged), `names the file: ${lines[0]}`);
  assert.match(lines[0]!, /offset \d+/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
});

test('a flipped byte in an SSTable block fails reads of that block and names file and offset', async () => {
  const dataDir = await makeTempDir();
  // A small memtable so the writes below end up in tables.
  const args = ['--memtable-bytes', '65536'];
  let node = await startNode({ dataDir, args });
  const value = (i: number) => `table-value-${String(i).padStart(4, '0')}-${'y'.repeat(100)}`;
  for (let i = 0; i < 1000; i++) {
    const answer = await httpRequest(`${node.url}${entityPath(`key-${String(i).padStart(4, '0')}`)}`, {
      method: 'PUT',
      body: value(i),
    });
    assert.equal(answer.status, 201);
  }
  assert.equal((await stopNode(node)).code, 0);

  // Damage the first data block of a table: the block holding its smallest keys.
  const tables = await filesEnding(dataDir, '.sst');
  assert.ok(tables.length > 0, 'writes were flushed to tables');
  const table = tables[0]!;
  const data = await readFile(table);
  const firstValue = data.indexOf('table-value-');
  assert.ok(firstValue >= 0);
  const damagedKey = data.subarray(firstValue + 12, firstValue + 16).toString();
  await flipByte(table, firstValue + 20);

  node = await startNode({ dataDir, args });
  const bad = await httpRequest(`${node.url}${entityPath(`key-${damagedKey}`)}`);
  assert.equal(bad.status, 500);
  assert.doesNotMatch(bad.body.toString(), /at .*\.js/, 'no stack trace to the client');
  // Keys in other tables or blocks still read.
  let served = 0;
  for (let i = 0; i < 1000; i += 97) {
    const answer = await httpRequest(`${node.url}${entityPath(`key-${String(i).padStart(4, '0')}`)}`);
    if (answer.status === 200) {
      assert.equal(answer.body.toString(), value(i));
      served++;
    } else {
      assert.equal(answer.status, 500);
    }
  }
  assert.ok(served > 0, 'undamaged blocks are still served');
  await stopNode(node);
  assert.match(node.stderr, /Corruption in \S+\.sst at offset \d+/);
  assert.ok(node.stderr.includes(table), `the log names ${table}: ${node.stderr}`);
});
