/**
 * Runs a short-lived `ringkv` command with bytes on its stdin and its output
 * kept as bytes: for the client commands, whose output is data.
 *
 *   const run = await ringkv(['put', 'k', '-', '--url', url], Buffer.from('v'));
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { MAIN_SCRIPT } from './node-process.js';

export interface CliRun {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs `ringkv <args>` to its end, with `input` on stdin; killed after `timeoutMs`. */
export function ringkv(
  args: readonly string[],
  input?: Buffer | string,
  timeoutMs = 15_000,
): Promise<CliRun> {
  const child = spawn(process.execPath, [MAIN_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (data: Buffer) => out.push(data));
  child.stderr.on('data', (data: Buffer) => err.push(data));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
  });
}

/** A failure: the exit code, and one plain line on stderr matching `pattern`, no stack trace. */
export function assertFailed(run: CliRun, code: number, pattern: RegExp): void {
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(run.code, code, run.stderr);
  assert.equal(lines.length, 1, `one line: ${run.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /^\s+at /m);
}
