/**
 * MemoryVfs's power loss: what was fsynced survives every crash; what was
 * not may be dropped, kept or torn (never anything else); a name not made
 * durable by a directory fsync may vanish, and a rename may be undone but is
 * never half done; the same seed gives the same state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type MemoryVfs as MemoryVfsType, writeFully } from './index.js';
import { MemoryVfs, seededRandom } from './memory-vfs.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const SEEDS = 200;

async function put(vfs: MemoryVfsType, path: string, data: Buffer, at = 0): Promise<void> {
  const file = await vfs.open(path, at === 0 ? 'w' : 'r+');
  await writeFully(file, data, 0, data.length, at);
  await file.close();
}

async function readOrUndefined(vfs: MemoryVfsType, path: string): Promise<Buffer | undefined> {
  try {
    return await vfs.readFile(path);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOENT');
    return undefined;
  }
}

/** Runs `build` on a fresh vfs for each seed and crashes it; returns what `look` says of each crashed state. */
async function outcomes<T>(
  build: (vfs: MemoryVfsType) => Promise<void>,
  look: (crashed: MemoryVfsType) => Promise<T>,
): Promise<T[]> {
  const seen: T[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const vfs = new MemoryVfs();
    await build(vfs);
    seen.push(await look(vfs.crash(seededRandom(seed))));
  }
  return seen;
}

describe('MemoryVfs: power loss', () => {
  test('fsynced content and names survive every crash', async () => {
    const seen = await outcomes(
      async (vfs) => {
        await vfs.mkdir('/d');
        const file = await vfs.open('/d/f', 'wx');
        await writeFully(file, b('durable'), 0, 7, 0);
        await file.datasync();
        await vfs.syncDir('/d');
        await file.close();
      },
      (crashed) => readOrUndefined(crashed, '/d/f'),
    );
    for (const content of seen) assert.deepEqual(content, b('durable'));
  });

  test('unsynced writes are dropped, kept or torn: a prefix of what was written, zeros for pages lost', async () => {
    const synced = b('0123456789');
    const unsynced = b('abcdefghijklmnopqrstuvwxyz');
    const seen = await outcomes(
      async (vfs) => {
        const file = await vfs.open('/f', 'wx');
        await writeFully(file, synced, 0, synced.length, 0);
        await file.sync();
        await vfs.syncDir('/');
        await writeFully(file, unsynced, 0, 13, 10);
        await writeFully(file, unsynced, 13, 13, 23);
      },
      async (crashed) => (await crashed.readFile('/f')).toString('latin1'),
    );
    const kinds = new Set<string>();
    for (const content of seen) {
      assert.ok(content.startsWith('0123456789'), content);
      const tail = content.slice(10);
      const written = unsynced.toString('latin1').slice(0, tail.length);
      // Every byte past the durable part is the byte written there, or a zero where a page was lost.
      for (let i = 0; i < tail.length; i++) {
        assert.ok(tail[i] === written[i] || tail[i] === '\0', `byte ${i} of ${JSON.stringify(content)}`);
      }
      if (tail.length === 0) kinds.add('dropped');
      else if (tail === unsynced.toString('latin1')) kinds.add('kept');
      else kinds.add(tail.includes('\0') ? 'torn with zeros' : 'torn');
    }
    assert.deepEqual([...kinds].sort(), ['dropped', 'kept', 'torn', 'torn with zeros']);
  });

  test('a truncation not followed by fsync may be undone', async () => {
    const seen = await outcomes(
      async (vfs) => {
        await put(vfs, '/f', b('long content'));
        await vfs.syncDir('/');
        const file = await vfs.open('/f', 'r+');
        await file.sync();
        await file.truncate(4);
        await file.close();
      },
      async (crashed) => (await crashed.readFile('/f')).toString(),
    );
    assert.deepEqual([...new Set(seen)].sort(), ['long', 'long content']);
  });

  test('a created file whose directory was not fsynced may vanish, though its data was synced', async () => {
    const seen = await outcomes(
      async (vfs) => {
        const file = await vfs.open('/new', 'wx');
        await writeFully(file, b('data'), 0, 4, 0);
        await file.sync();
      },
      async (crashed) => (await readOrUndefined(crashed, '/new'))?.toString() ?? 'gone',
    );
    assert.deepEqual([...new Set(seen)].sort(), ['data', 'gone']);
  });

  test('a rename not followed by a directory fsync may be undone, never half done', async () => {
    const seen = await outcomes(
      async (vfs) => {
        await put(vfs, '/M', b('old'));
        await put(vfs, '/M.tmp', b('new'));
        for (const path of ['/M', '/M.tmp']) {
          const file = await vfs.open(path, 'r');
          await file.sync();
          await file.close();
        }
        await vfs.syncDir('/');
        await vfs.rename('/M.tmp', '/M');
      },
      async (crashed) =>
        `${(await readOrUndefined(crashed, '/M'))?.toString()} ${(await readOrUndefined(crashed, '/M.tmp'))?.toString()}`,
    );
    assert.deepEqual([...new Set(seen)].sort(), ['new undefined', 'old new']);
  });

  test('after the directory fsync, the rename and a removal are durable', async () => {
    const seen = await outcomes(
      async (vfs) => {
        await put(vfs, '/a', b('A'));
        await put(vfs, '/gone', b('G'));
        const file = await vfs.open('/a', 'r');
        await file.sync();
        await file.close();
        await vfs.syncDir('/');
        await vfs.rename('/a', '/b');
        await vfs.remove('/gone');
        await vfs.syncDir('/');
      },
      async (crashed) => (await crashed.list('/')).sort().join(','),
    );
    assert.deepEqual([...new Set(seen)], ['b']);
  });

  test('directory changes are kept in order: a later one never without an earlier one', async () => {
    const seen = await outcomes(
      async (vfs) => {
        for (const name of ['1', '2', '3', '4']) await put(vfs, `/${name}`, b(name));
      },
      async (crashed) => (await crashed.list('/')).sort().join(''),
    );
    assert.deepEqual([...new Set(seen)].sort(), ['', '1', '12', '123', '1234']);
  });

  test('mkdir is durable, with the parents it creates', async () => {
    const seen = await outcomes(
      (vfs) => vfs.mkdir('/a/b/c'),
      async (crashed) => (await crashed.stat('/a/b/c')).isDirectory,
    );
    assert.ok(seen.every((isDirectory) => isDirectory));
  });

  test('the same seed gives the same state, another seed may not', async () => {
    const build = async (vfs: MemoryVfsType) => {
      for (let i = 0; i < 20; i++) await put(vfs, `/f${i}`, Buffer.alloc(100, i));
    };
    const state = async (crashed: MemoryVfsType) => {
      const names = (await crashed.list('/')).sort();
      return Promise.all(names.map(async (n) => `${n}:${(await crashed.readFile(n)).toString('hex')}`));
    };
    const first = new MemoryVfs();
    await build(first);
    const second = new MemoryVfs();
    await build(second);
    assert.deepEqual(await state(first.crash(seededRandom(7))), await state(second.crash(seededRandom(7))));
    const states = new Set<string>();
    for (let seed = 1; seed <= 20; seed++)
      states.add(JSON.stringify(await state(first.crash(seededRandom(seed)))));
    assert.ok(states.size > 5, `${states.size} states from 20 seeds`);
  });

  test('after crash() the old vfs fails every call with EIO, calls in flight included', async () => {
    const vfs = new MemoryVfs();
    const file = await vfs.open('/f', 'wx');
    const inFlight = file.write(b('x'), 0, 1, 0);
    vfs.crash(seededRandom(1));
    assert.equal(vfs.stopped, true);
    await assert.rejects(inFlight, { code: 'EIO' });
    await assert.rejects(vfs.open('/g', 'wx'), { code: 'EIO' });
    await assert.rejects(file.sync(), { code: 'EIO' });
    assert.throws(() => vfs.removeSync('/f'), { code: 'EIO' });
  });

  test('a dsync write is durable once it resolves, and may be torn while in flight', async () => {
    const done = new MemoryVfs();
    const durable = await done.open('/log', 'wx', { dsync: true });
    assert.equal(durable.durableWrites, true);
    await done.syncDir('/');
    await writeFully(durable, b('record'), 0, 6, 0);
    for (let seed = 1; seed <= 20; seed++) {
      assert.deepEqual(await done.crash(seededRandom(seed)).readFile('/log'), b('record'));
    }

    const sizes = new Set<number>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const vfs = new MemoryVfs();
      const file = await vfs.open('/log', 'wx', { dsync: true });
      await vfs.syncDir('/');
      const inFlight = file.write(b('record'), 0, 6, 0);
      const crashed = vfs.crash(seededRandom(seed));
      await assert.rejects(inFlight, { code: 'EIO' });
      sizes.add((await crashed.readFile('/log')).length);
    }
    assert.ok(sizes.has(0) && sizes.has(6) && sizes.size > 2, `sizes ${[...sizes]}`);

    const noDsync = new MemoryVfs({ dsync: false });
    assert.equal((await noDsync.open('/log', 'wx', { dsync: true })).durableWrites, false);
  });

  test('crashAtOperation cuts the power at the chosen state-changing call, which fails', async () => {
    const vfs = new MemoryVfs();
    const file = await vfs.open('/f', 'wx'); // 1: the create
    await vfs.syncDir('/'); // 2
    await writeFully(file, b('one'), 0, 3, 0); // 3
    await file.sync(); // 4
    assert.equal(vfs.operations, 4);
    const crashed = vfs.crashAtOperation(6, seededRandom(3));
    await writeFully(file, b('two'), 0, 3, 3); // 5
    await assert.rejects(file.sync(), { code: 'EIO' }); // 6: the power goes first
    const after = await crashed;
    const content = (await after.readFile('/f')).toString();
    assert.ok(['one', 'onet', 'onetw', 'onetwo'].includes(content.replace(/\0/g, '')), content);
    assert.ok(content.startsWith('one'));
  });
});
