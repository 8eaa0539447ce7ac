/**
 * The architecture as a test: the package layers, how a package is entered,
 * and where the file system is touched. It reads the TypeScript sources, so
 * a wrong-way or deep import fails `npm test` before anyone reads the diff.
 *
 * - Layers, bottom up: util, config, client, storage, cluster, http, node,
 *   cli. A source file imports its own package and the ones below it, never
 *   one above. The client (package.json "exports") sits low so that it can
 *   never pull in server code: it may use util and config only.
 * - Packages with an index.ts are entered through it from outside. The
 *   cluster package is a set of sub-packages (ring, transport, replication,
 *   hints, antientropy), each entered through its own index.ts, beside a few
 *   modules of its own (clock, store, ...); util and config are flat modules.
 *   storage/entry, the data model that the WAL, SSTables, hint files and the
 *   internode protocol share, is reached through storage/index.ts.
 * - Only storage/vfs touches the file system (node:fs); everything else goes
 *   through the Vfs, so that tests can crash it and inject faults.
 * - Test helpers live in test/support, not in src.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const LAYERS = ['util', 'config', 'client', 'storage', 'cluster', 'http', 'node', 'cli'] as const;
/** Packages made of flat modules: any of them may be imported directly. */
const FLAT = new Set(['util', 'config']);
/** Where node:fs may be imported. */
const FS_ALLOWED = ['storage/vfs/'];

interface Import {
  readonly file: string;
  readonly target: string;
  readonly line: number;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (name.endsWith('.ts')) out.push(relative(SRC, path).split(sep).join('/'));
  }
  return out;
}

const FILES = sourceFiles(SRC);
const IS_TEST = (file: string) => file.endsWith('.test.ts');

/** Every import of each file, with relative specifiers resolved to paths under src/ (or beyond it). */
function importsOf(file: string): Import[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const found: Import[] = [];
  // Static imports and re-exports, side-effect imports, and import('...') calls.
  const pattern =
    /^(?:import|export)[^'"]*?from\s+'([^']+)'|^import\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm;
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1] ?? match[2] ?? match[3]!;
    const line = text.slice(0, match.index).split('\n').length;
    const target = specifier.startsWith('.')
      ? normalize(join(dirname(file), specifier))
          .split(sep)
          .join('/')
      : specifier;
    found.push({ file, target, line });
  }
  return found;
}

const IMPORTS = FILES.flatMap(importsOf);

function layerOf(path: string): number {
  return LAYERS.indexOf(path.split('/')[0] as (typeof LAYERS)[number]);
}

function describe(imports: readonly Import[]): string {
  return imports.map((i) => `  ${i.file}:${i.line} imports ${i.target}`).join('\n');
}

/** Whether `target` (a path under src/, .js) is a way into its package that outsiders may use. */
function isEntryPoint(target: string): boolean {
  const parts = target.split('/');
  const pkg = parts[0]!;
  if (FLAT.has(pkg)) return true;
  if (parts.length === 2 && parts[1] === 'index.js') return true;
  if (pkg === 'cluster') {
    // A module of the cluster package itself, or a sub-package's index.
    return parts.length === 2 || (parts.length === 3 && parts[2] === 'index.js');
  }
  return false;
}

test('every source file belongs to a known layer', () => {
  const unknown = FILES.filter((file) => layerOf(file) < 0);
  assert.deepEqual(unknown, [], 'a new top-level folder needs its place in LAYERS');
});

test('no import runs up the layers', () => {
  const upward = IMPORTS.filter(
    (i) => !i.target.startsWith('node:') && !i.target.startsWith('..') && layerOf(i.target) > layerOf(i.file),
  );
  assert.deepEqual(upward, [], `imports that run up the layers:\n${describe(upward)}`);
});

test('other packages are entered through their index (tests may reach inside their own package)', () => {
  const deep = IMPORTS.filter((i) => {
    if (i.target.startsWith('node:') || i.target.startsWith('..')) return false;
    if (layerOf(i.target) < 0) return false;
    const [ownPkg, ownSub] = i.file.split('/');
    const [pkg, sub] = i.target.split('/');
    if (ownPkg === pkg) {
      // Inside cluster, its sub-packages enter each other through their index too.
      if (pkg !== 'cluster' || ownSub === sub || IS_TEST(i.file)) return false;
      const parts = i.target.split('/');
      return !(parts.length === 2 || (parts.length === 3 && parts[2] === 'index.js'));
    }
    return !isEntryPoint(i.target);
  });
  assert.deepEqual(deep, [], `deep imports across packages:\n${describe(deep)}`);
});

test('only storage/vfs touches the file system', () => {
  const direct = IMPORTS.filter(
    (i) =>
      !IS_TEST(i.file) &&
      /^(node:)?fs(\/promises)?$/.test(i.target) &&
      !FS_ALLOWED.some((allowed) => i.file.startsWith(allowed)),
  );
  assert.deepEqual(direct, [], `node:fs outside the vfs:\n${describe(direct)}`);
});

test('test helpers live in test/support, not in src', () => {
  const helpers = FILES.filter(
    (file) => !IS_TEST(file) && /(^|\/)(_[^/]*|test-[^/]*|[^/]*\.suite)\.ts$/.test(file),
  );
  assert.deepEqual(helpers, []);
});
