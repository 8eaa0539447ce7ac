import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MemoryVfs, replaceFileDurably } from '../../storage/index.js';
import {
  CLEANUP_DUE_FILE,
  loadCleanupDue,
  loadMembership,
  MEMBERSHIP_FILE,
  markCleanupDue,
  saveMembership,
} from './file.js';
import { encodeMembership, MEMBERSHIP_FORMAT_VERSION } from './format.js';
import { bootstrapMembership } from './membership.js';

describe('membership files', () => {
  test('a saved view loads back; none stored is undefined; a damaged one is refused, named', async () => {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    assert.equal(await loadMembership(vfs, '/data'), undefined);
    const view = bootstrapMembership(['http://a:1', 'http://b:1']);
    await saveMembership(vfs, '/data', view);
    assert.deepEqual(await loadMembership(vfs, '/data'), view);
    const file = await vfs.open(join('/data', MEMBERSHIP_FILE), 'r+');
    await file.write(Buffer.from([0xff]), 0, 1, 20);
    await file.close();
    await assert.rejects(loadMembership(vfs, '/data'), /Damaged membership file \/data\/MEMBERSHIP/);
  });

  test('the cleanup marker is set, seen, and cleared (clearing twice is harmless)', async () => {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    assert.equal(await loadCleanupDue(vfs, '/data'), false);
    await markCleanupDue(vfs, '/data', 7n);
    assert.equal(await loadCleanupDue(vfs, '/data'), true);
    assert.equal((await vfs.readFile(join('/data', CLEANUP_DUE_FILE))).toString(), '7\n');
    await markCleanupDue(vfs, '/data', undefined);
    assert.equal(await loadCleanupDue(vfs, '/data'), false);
    await markCleanupDue(vfs, '/data', undefined);
  });
});

describe('membership files of another format version', () => {
  test('a file from a later version is refused naming its version, whatever its layout', async () => {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    const v1 = encodeMembership(bootstrapMembership(['http://a:1', 'http://b:1']));
    // A later layout: the same header, a field more, and its checksum elsewhere (here: none at the end).
    const later = Buffer.concat([v1.subarray(0, v1.length - 4), Buffer.from([0, 0, 0, 7, 1, 2])]);
    later[4] = MEMBERSHIP_FORMAT_VERSION + 1;
    await replaceFileDurably(vfs, '/data', join('/data', MEMBERSHIP_FILE), later);
    await assert.rejects(
      loadMembership(vfs, '/data'),
      new RegExp(
        `Membership file /data/MEMBERSHIP: unknown format version ${MEMBERSHIP_FORMAT_VERSION + 1} .*written by another version of ringkv: start the node with that version$`,
      ),
    );
  });
});
