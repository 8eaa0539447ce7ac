import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TINY } from '../../test/support/lsm-options.js';
import { makeTempDir, removeTempDirs } from '../../test/support/temp-dir.js';
import { isRingkvError, RingkvError } from '../util/errors.js';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from './entry/entry.js';
import { LsmEngine } from './lsm-engine.js';
import { restoreSnapshot, SUMS_NAME } from './snapshot.js';
import { FaultyVfs, MemoryVfs, nodeVfs, replaceFileDurably, type Vfs } from './vfs/index.js';

const LEVELS = 7;
const key = (i: number) => Buffer.from(`key-${String(i).padStart(5, '0')}`);

async function dump(engine: LsmEngine): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
    for (const entry of batch as Entry[]) {
      if (entry.kind === EntryKind.Value) out.set(entry.key.toString(), entry.value.toString());
    }
  }
  await cursor.close();
  return out;
}

/** Snapshots `engine` into /snap, closes it, restores /snap into /restored and checks it holds `expected`. */
async function snapshotAndRestore(vfs: Vfs, engine: LsmEngine, expected: Map<string, string>): Promise<void> {
  await engine.snapshot('/snap');
  await engine.close();
  await restoreSnapshot(vfs, '/snap', '/restored', LEVELS);
  const reopened = await LsmEngine.open({ dir: '/restored', vfs, sync: false, log: () => {} });
  assert.deepEqual(await dump(reopened), expected);
  await reopened.close();
}

async function filled(
  vfs: Vfs,
  dir: string,
  count: number,
): Promise<{ engine: LsmEngine; expected: Map<string, string> }> {
  const engine = await LsmEngine.open({ dir, vfs, sync: false, ...TINY, log: () => {} });
  const expected = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    await engine.write(valueEntry(key(i), BigInt(i + 1), Buffer.from(`v${i}`)));
    expected.set(key(i).toString(), `v${i}`);
  }
  for (let i = 0; i < count; i += 7) {
    await engine.write(tombstoneEntry(key(i), BigInt(count + i + 1)));
    expected.delete(key(i).toString());
  }
  return { engine, expected };
}

describe('snapshot and restore', () => {
  after(removeTempDirs);

  it('a snapshot holds every write acknowledged before it, while writes go on; a restore serves exactly that', async () => {
    const base = await makeTempDir('ringkv-snapshot-');
    const { engine, expected } = await filled(nodeVfs, join(base, 'data'), 1500);
    // Writes racing the snapshot: in it or not, never half.
    const racing = Array.from({ length: 200 }, (_, i) =>
      engine.write(valueEntry(key(5000 + i), BigInt(10_000 + i), Buffer.from('late'))),
    );
    const info = await engine.snapshot(join(base, 'snap'));
    await Promise.all(racing);
    assert.ok(info.tables > 0);
    assert.equal(info.copied, 0, 'same file system: hard links');
    const names = readdirSync(join(base, 'snap')).sort();
    assert.ok(names.includes('MANIFEST') && names.includes(SUMS_NAME) && names.includes('SNAPSHOT'));
    assert.equal(names.filter((n) => n.endsWith('.sst')).length, info.tables);
    // The sums are in sha256sum's format: one line per table, the manifest and SNAPSHOT.
    const sums = readFileSync(join(base, 'snap', SUMS_NAME), 'utf8')
      .trim()
      .split('\n');
    assert.equal(sums.length, info.tables + 2);
    for (const line of sums) assert.match(line, /^[0-9a-f]{64} {2}(\d+\.sst|MANIFEST|SNAPSHOT)$/);
    // The engine goes on (compactions, more writes) without touching the snapshot.
    for (let i = 0; i < 300; i++)
      await engine.write(valueEntry(key(i), BigInt(20_000 + i), Buffer.from('newer')));
    await engine.compact();
    await engine.close();

    const restored = await restoreSnapshot(nodeVfs, join(base, 'snap'), join(base, 'restored'), LEVELS);
    assert.equal(restored.tables, info.tables);
    const reopened = await LsmEngine.open({ dir: join(base, 'restored'), sync: false, log: () => {} });
    const contents = await dump(reopened);
    for (const [k, v] of expected) assert.equal(contents.get(k), v, k);
    for (const k of contents.keys()) {
      assert.ok(expected.has(k) || k.startsWith('key-05'), `unexpected ${k}`);
    }
    assert.equal([...contents.values()].filter((v) => v === 'newer').length, 0);
    await reopened.close();
  });

  it('a damaged or incomplete snapshot is refused, naming the file, and nothing is restored', async () => {
    const base = await makeTempDir('ringkv-snapshot-');
    const { engine } = await filled(nodeVfs, join(base, 'data'), 400);
    await engine.snapshot(join(base, 'snap'));
    await engine.close();
    const table = readdirSync(join(base, 'snap')).find((n) => n.endsWith('.sst'))!;
    const path = join(base, 'snap', table);
    const bytes = readFileSync(path);
    // A copy with one byte flipped (the original is a link to the engine's own table).
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(`${path}.tmp`, bytes);
    await nodeVfs.rename(`${path}.tmp`, path);
    await assert.rejects(
      restoreSnapshot(nodeVfs, join(base, 'snap'), join(base, 'restored'), LEVELS),
      (err) =>
        isRingkvError(err, 'RINGKV_CORRUPTION') && err.message.includes(path) && /damaged/.test(err.message),
    );
    assert.deepEqual(readdirSync(base).sort(), ['data', 'snap']);

    await nodeVfs.remove(join(base, 'snap', SUMS_NAME));
    await assert.rejects(
      restoreSnapshot(nodeVfs, join(base, 'snap'), join(base, 'restored'), LEVELS),
      (err) => isRingkvError(err, 'RINGKV_CORRUPTION') && err.message.includes('Not a complete snapshot'),
    );
  });

  it('refuses a target that is not empty, for a snapshot and for a restore', async () => {
    const base = await makeTempDir('ringkv-snapshot-');
    const { engine } = await filled(nodeVfs, join(base, 'data'), 100);
    await engine.snapshot(join(base, 'snap'));
    await assert.rejects(engine.snapshot(join(base, 'snap')), (err) =>
      isRingkvError(err, 'RINGKV_BAD_REQUEST'),
    );
    await engine.close();
    await assert.rejects(
      restoreSnapshot(nodeVfs, join(base, 'snap'), join(base, 'data'), LEVELS),
      (err) => isRingkvError(err, 'RINGKV_BAD_REQUEST') && err.message.includes('not empty'),
    );
  });

  it('a restore that fails midway leaves the target empty, so that it can be run again', async () => {
    const memory = new MemoryVfs();
    const { engine, expected } = await filled(memory, '/data', 600);
    const info = await engine.snapshot('/snap');
    await engine.close();
    assert.ok(info.tables >= 2, `${info.tables} tables`);
    const vfs = new FaultyVfs(memory);
    // The disk fills up after the first table, then while the MANIFEST goes in, then while BIRTH does.
    for (const rule of [
      { op: 'link', path: '/snap/', skip: 1, error: 'ENOSPC' },
      { op: 'rename', path: '/restored/MANIFEST', error: 'ENOSPC' },
      { op: 'write', path: '/restored/BIRTH', error: 'ENOSPC' },
    ] as const) {
      const fault = vfs.inject(rule);
      await assert.rejects(
        restoreSnapshot(vfs, '/snap', '/restored', LEVELS, {
          files: [{ name: 'BIRTH', bytes: Buffer.from('born\n') }],
        }),
        (err) => (err as NodeJS.ErrnoException).code === 'ENOSPC',
      );
      fault.remove();
      assert.deepEqual(await memory.list('/restored'), [], `after a fault on ${rule.op}`);
    }
    await restoreSnapshot(vfs, '/snap', '/restored', LEVELS, {
      files: [{ name: 'BIRTH', bytes: Buffer.from('born\n') }],
    });
    assert.equal((await memory.readFile('/restored/BIRTH')).toString(), 'born\n');
    const reopened = await LsmEngine.open({ dir: '/restored', vfs: memory, sync: false, log: () => {} });
    assert.deepEqual(await dump(reopened), expected);
    await reopened.close();
  });

  it('a snapshot that fails leaves its directory empty, so that it can be taken again', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const { engine, expected } = await filled(vfs, '/data', 300);
    for (const path of ['/snap/MANIFEST', '/snap/SHA256SUMS']) {
      const fault = vfs.inject({ op: 'rename', path, error: 'ENOSPC' });
      await assert.rejects(
        engine.snapshot('/snap'),
        (err) => (err as NodeJS.ErrnoException).code === 'ENOSPC',
      );
      fault.remove();
      assert.deepEqual(await vfs.list('/snap'), [], `after a fault on ${path}`);
    }
    await snapshotAndRestore(vfs, engine, expected);
  });

  it('records when it began, for the restore to judge before it writes anything', async () => {
    const vfs = new MemoryVfs();
    const startMs = Date.parse('2024-03-01T12:00:00.000Z');
    const engine = await LsmEngine.open({
      dir: '/data',
      vfs,
      sync: false,
      log: () => {},
      nowMs: () => startMs,
    });
    await engine.write(valueEntry(key(1), 1n, Buffer.from('v')));
    await engine.snapshot('/snap');
    await engine.close();
    assert.equal(
      (await vfs.readFile('/snap/SNAPSHOT')).toString(),
      '{"created":"2024-03-01T12:00:00.000Z"}\n',
    );
    const seen: (number | undefined)[] = [];
    const refuse = (createdMs: number | undefined) => {
      seen.push(createdMs);
      throw new RingkvError('RINGKV_BAD_REQUEST', 'Too old');
    };
    await assert.rejects(restoreSnapshot(vfs, '/snap', '/restored', LEVELS, { admit: refuse }), /Too old/);
    assert.deepEqual(seen, [startMs]);
    assert.ok(!(await vfs.list('/')).includes('restored'));
    // SHA256SUMS cut short by its last line: SNAPSHOT is there, unlisted, and its time must not be skipped.
    const sums = (await vfs.readFile('/snap/SHA256SUMS')).toString().replace(/.* {2}SNAPSHOT\n/, '');
    await replaceFileDurably(vfs, '/snap', '/snap/SHA256SUMS', Buffer.from(sums));
    await assert.rejects(
      restoreSnapshot(vfs, '/snap', '/restored', LEVELS, { admit: refuse }),
      (err) =>
        isRingkvError(err, 'RINGKV_CORRUPTION') &&
        err.message.includes('/snap/SHA256SUMS') &&
        /does not list SNAPSHOT/.test(err.message),
    );
    assert.deepEqual(seen, [startMs], 'refused before its age is judged');
    assert.ok(!(await vfs.list('/')).includes('restored'));
    // A snapshot from before SNAPSHOT was written: no time, and it restores.
    await vfs.remove('/snap/SNAPSHOT');
    const later: (number | undefined)[] = [];
    await restoreSnapshot(vfs, '/snap', '/restored', LEVELS, { admit: (createdMs) => later.push(createdMs) });
    assert.deepEqual(later, [undefined]);
  });

  it('works on the in-memory file system too (links there are names of one file)', async () => {
    const vfs = new MemoryVfs();
    const { engine, expected } = await filled(vfs, '/data', 600);
    await snapshotAndRestore(vfs, engine, expected);
  });
});
