import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryEngine, MemoryVfs, seededRandom, valueEntry } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import { BIRTH_FILE, loadBirthVersion } from './birth.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-birth-'));
  dirs.push(dir);
  return dir;
}

/** A clock whose now() hands out 1000, 1001, ... */
function countingClock(): { now(): bigint; calls: number } {
  return {
    calls: 0,
    now() {
      return 1000n + BigInt(this.calls++);
    },
  };
}

describe('loadBirthVersion', () => {
  it('an empty data directory is born now, and keeps that version across restarts', async () => {
    const dir = await tempDir();
    const clock = countingClock();
    assert.equal(await loadBirthVersion(dir, { engine: new MemoryEngine(), clock }), 1000n);
    assert.equal(await readFile(join(dir, BIRTH_FILE), 'latin1'), 'ringkv-birth 2\n1000\n5aa592e2\n');
    // Restarted (the engine holds data by now): the recorded version, no new one.
    const engine = new MemoryEngine();
    await engine.write(valueEntry(Buffer.from('k'), 5n, Buffer.from('v')));
    assert.equal(await loadBirthVersion(dir, { engine, clock }), 1000n);
    assert.equal(clock.calls, 1);
  });

  it('a directory with data and no file never lost anything: 0', async () => {
    const dir = await tempDir();
    const engine = new MemoryEngine();
    await engine.write(valueEntry(Buffer.from('k'), 5n, Buffer.from('v')));
    const clock = countingClock();
    assert.equal(await loadBirthVersion(dir, { engine, clock }), 0n);
    assert.equal(clock.calls, 0);
    assert.equal(await loadBirthVersion(dir, { engine: new MemoryEngine(), clock }), 0n, 'recorded');
  });

  it('a damaged file stops the node with RINGKV_CORRUPTION, naming it', async () => {
    const dir = await tempDir();
    const path = join(dir, BIRTH_FILE);
    for (const text of [
      'ringkv-birth 1\n12x\n',
      'garbage',
      `ringkv-birth 1\n${2n ** 64n}\n`,
      // A digit changed on disk: still a version, but not the one written.
      'ringkv-birth 2\n1900\n5aa592e2\n',
      'ringkv-birth 2\n1000\n',
      'ringkv-birth 1\n1000\n5aa592e2\n',
    ]) {
      await writeFile(path, text);
      await assert.rejects(
        loadBirthVersion(dir, { engine: new MemoryEngine(), clock: countingClock() }),
        (err: unknown) => isRingkvError(err, 'RINGKV_CORRUPTION') && err.message.startsWith(`Bad ${path}: `),
        JSON.stringify(text),
      );
    }
  });

  it('a digit changed on disk in the file it wrote is found by the checksum', async () => {
    const dir = await tempDir();
    const path = join(dir, BIRTH_FILE);
    assert.equal(await loadBirthVersion(dir, { engine: new MemoryEngine(), clock: countingClock() }), 1000n);
    await writeFile(path, (await readFile(path, 'latin1')).replace('1000', '1900'));
    await assert.rejects(
      loadBirthVersion(dir, { engine: new MemoryEngine(), clock: countingClock() }),
      (err: unknown) =>
        isRingkvError(err, 'RINGKV_CORRUPTION') && err.message.startsWith(`Bad ${path}: checksum mismatch`),
    );
  });

  it('a file of version 1 (no checksum) still reads', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, BIRTH_FILE), 'ringkv-birth 1\n1234\n');
    assert.equal(await loadBirthVersion(dir, { engine: new MemoryEngine(), clock: countingClock() }), 1234n);
  });

  it('goes through the given vfs, durably: a power loss right after keeps the version', async () => {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    assert.equal(
      await loadBirthVersion('/data', { engine: new MemoryEngine(), clock: countingClock(), vfs }),
      1000n,
    );
    const after = vfs.crash(seededRandom(7));
    const clock = countingClock();
    assert.equal(await loadBirthVersion('/data', { engine: new MemoryEngine(), clock, vfs: after }), 1000n);
    assert.equal(clock.calls, 0);
  });
});
