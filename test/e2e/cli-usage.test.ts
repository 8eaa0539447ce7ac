/**
 * Command-line usage that needs no running node: flags checked before any
 * request (a bad one is exit 2 even when no node answers), flags a command
 * does not take refused, help texts that list what the command does, and
 * the environment variables the code reads named in docs/api.md.
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NODE_TUNING_FLAG_NAMES } from '../../src/config/options.js';
import { assertFailed, ringkv } from '../support/cli.js';
import { freePort } from '../support/ports.js';

describe('ringkv usage without a node', () => {
  it('ring checks --from before it asks the node: a bad one is exit 2 even when no node answers', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    for (const from of ['0', 'abc', '-1']) {
      assertFailed(
        await ringkv(['ring', 'k', '--from', from, '--url', refused]),
        2,
        new RegExp(`^ringkv: Bad --from: expected a positive integer, got "${from}"$`),
      );
    }
  });

  it('scan and export refuse a range that can hold no key before asking: exit 2 even when no node answers', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    assertFailed(
      await ringkv(['scan', 'b', 'a', '--url', refused]),
      2,
      /^ringkv: Bad END: "a" is not after START "b", so the range holds no key$/,
    );
    assertFailed(
      await ringkv(['scan', 'a', 'a', '--url', refused]),
      2,
      /^ringkv: Bad END: "a" is not after START "a", so the range holds no key$/,
    );
    assertFailed(
      await ringkv(['scan', 'a', '', '--url', refused]),
      2,
      /^ringkv: Bad END: empty \(leave it out to read to the last key\)$/,
    );
    assertFailed(
      await ringkv(['export', '--end', '', '--url', refused]),
      2,
      /^ringkv: Bad --end: empty \(leave it out to read to the last key\)$/,
    );
    assertFailed(
      await ringkv(['export', '--start', 'm', '--end', 'c', '--url', refused]),
      2,
      /^ringkv: Bad --end: "c" is not after --start "m", so the range holds no key$/,
    );
    // A range that holds keys goes on to ask the node: none answers here, exit 3.
    assert.equal((await ringkv(['scan', 'a', 'b', '--url', refused])).code, 3);
  });

  it('cancel takes no --timeout or --no-wait (it does not wait): exit 2', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    assertFailed(
      await ringkv(['cancel', '--url', refused, '--timeout', '5000']),
      2,
      /^ringkv: Unknown option '--timeout'$/,
    );
    assertFailed(
      await ringkv(['cancel', '--url', refused, '--no-wait']),
      2,
      /^ringkv: Unknown option '--no-wait'$/,
    );
  });

  it('an empty --out, --snapshot or --data is missing, not the working directory: exit 2', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    assertFailed(await ringkv(['snapshot', '--out', '', '--url', refused]), 2, /^ringkv: Missing --out DIR$/);
    assertFailed(
      await ringkv(['restore', '--snapshot', '', '--data', 'unused']),
      2,
      /^ringkv: Missing --snapshot DIR$/,
    );
    assertFailed(
      await ringkv(['restore', '--snapshot', 'unused', '--data', '']),
      2,
      /^ringkv: Missing --data DIR$/,
    );
  });

  it('cluster --help names every serve flag it passes to the nodes', async () => {
    const help = (await ringkv(['cluster', '--help'])).stdout.toString();
    for (const name of NODE_TUNING_FLAG_NAMES) assert.match(help, new RegExp(`--${name}\\b`), `--${name}`);
  });

  it('only get exits 1 (not found): the other commands do not say they may', async () => {
    for (const command of ['put', 'delete', 'scan', 'status', 'ring', 'export', 'import']) {
      const help = (await ringkv([command, '--help'])).stdout.toString();
      assert.match(help, /^Exit: 0 done, /m, command);
      assert.doesNotMatch(help, /\b1 not found,/, command);
    }
    assert.match((await ringkv(['get', '--help'])).stdout.toString(), /\b1 not found\b/);
  });
});

describe('the documentation of the command line', () => {
  it('names every environment variable the code reads', () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const read = new Set<string>();
    const sources = [
      join(root, 'bin/ringkv'),
      ...readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
        .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts'))
        .map((path) => join(root, 'src', path)),
    ];
    for (const path of sources) {
      for (const match of readFileSync(path, 'utf8').matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g))
        read.add(match[1]!);
    }
    assert.ok(read.has('RINGKV_CLOCK_OFFSET_MS'), [...read].join(' '));
    const api = readFileSync(join(root, 'docs/api.md'), 'utf8');
    for (const name of read) assert.ok(api.includes(`\`${name}`), `${name} is not in docs/api.md`);
  });
});
