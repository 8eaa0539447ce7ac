/**
 * Results files: one JSON file (everything measured, with the commit, the
 * Node version, the machine and the settings) and one short markdown summary
 * per mode and run, in bench/results/, named <stamp>-<mode>.{json,md}.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { usedSettings } from './settings.mjs';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const ROOT_DIR = path.dirname(BENCH_DIR);
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

function git(args, cwd = ROOT_DIR) {
  try {
    return execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

export function commitInfo(cwd = ROOT_DIR) {
  const sha = git(['rev-parse', 'HEAD'], cwd);
  const status = git(['status', '--porcelain', '--untracked-files=no'], cwd);
  return { sha, short: sha ? sha.slice(0, 10) : null, dirty: status === null ? null : status.length > 0 };
}

/**
 * The build measured when BENCH_RINGKV_BIN names another checkout's
 * bin/ringkv (a worktree of an older commit): its path and that checkout's
 * commit, since the bench's own commit then says nothing of it. null otherwise.
 */
export function measuredBuildInfo() {
  const bin = process.env.BENCH_RINGKV_BIN;
  if (!bin) return null;
  const checkout = path.dirname(path.dirname(path.resolve(BENCH_DIR, bin)));
  return { bin, ...commitInfo(checkout) };
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    // The bench's own pool, and that of every node it starts: bin/ringkv sizes it only when unset.
    uvThreadPoolSize: process.env.UV_THREADPOOL_SIZE ?? null,
  };
}

/** 2024-05-01T12:34:56Z -> 20240501-123456 */
export function makeStamp(date = new Date()) {
  return date.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function header(mode) {
  const commit = commitInfo();
  const build = measuredBuildInfo();
  const m = machineInfo();
  return [
    `commit ${commit.short ?? 'unknown'}${commit.dirty ? ' (with uncommitted changes)' : ''}, ` +
      `Node ${m.node}, ${m.cpuCount} x ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, ` +
      `UV_THREADPOOL_SIZE ${m.uvThreadPoolSize ?? "unset (bin/ringkv sizes the nodes' pool to the cores)"}`,
    ...(build === null
      ? []
      : [
          `measured: \`${build.bin}\`, a checkout at ${build.short ?? 'an unknown commit'}` +
            `${build.dirty ? ' with uncommitted changes' : ''}`,
        ]),
    `command: \`node run.mjs ${mode}\` in bench/ (settings in the JSON file)`,
  ].join('\n');
}

/** Writes <stamp>-<mode>.json and .md; returns their paths. */
export function writeResults(stamp, mode, figures, markdown) {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const base = path.join(RESULTS_DIR, `${stamp}-${mode}`);
  const doc = {
    mode,
    date: new Date().toISOString(),
    commit: commitInfo(),
    measuredBuild: measuredBuildInfo(),
    machine: machineInfo(),
    settings: usedSettings(),
    figures,
  };
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(doc, null, 2)}\n`);
  fs.writeFileSync(`${base}.md`, `# ringkv bench: ${mode} (${stamp})\n\n${header(mode)}\n\n${markdown}\n`);
  return { json: `${base}.json`, md: `${base}.md` };
}
