/**
 * Child processes and temporary directories of a bench run, tracked so that
 * every one of them is removed however the run ends: normal return, thrown
 * error, SIGINT/SIGTERM, or an uncaught exception.
 *
 * - Children are started detached (their own process group), so a child that
 *   starts processes of its own (`ringkv cluster`) is stopped as a group: the
 *   group id is the child's PID. Nothing is ever killed by name.
 * - stopChild() sends SIGTERM, waits a bounded time, then SIGKILLs.
 * - The exit hook runs synchronously: SIGKILL to every live group, rmSync of
 *   every temporary directory.
 */
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envFlag } from './settings.mjs';

const children = new Set();
const tempDirs = new Set();
let hooked = false;

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {}
  }
}

function cleanupSync() {
  for (const child of children) killGroup(child, 'SIGKILL');
  children.clear();
  let keep = false;
  try {
    keep = keepTemp();
  } catch {
    // A bad BENCH_KEEP_TMP is reported where the run reads it first; at exit, clean up.
  }
  if (keep) return;
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function hook() {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children and removing temporary files\n`);
      cleanupSync();
      process.exit(130);
    });
  }
}

/** BENCH_KEEP_TMP=1 leaves the temporary directories in place (to read nodes' logs). */
function keepTemp() {
  return envFlag('BENCH_KEEP_TMP', false);
}

/** A fresh directory under `base` (BENCH_DATA_DIR or the OS temp dir), removed at exit. */
export function makeTempDir(label) {
  keepTemp(); // a bad value is refused before anything is made
  hook();
  const base = process.env.BENCH_DATA_DIR || os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, `ringkv-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  if (!keepTemp()) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Starts `node [nodeArgs] script [args]` detached, its output appended to
 * `logFile`. Returns the ChildProcess; its `exited` property is a promise of
 * { code, signal }.
 */
export function startNode(script, args, { nodeArgs = [], env = {}, logFile, cwd } = {}) {
  hook();
  const out = fs.openSync(logFile, 'a');
  // A variable set to undefined or null in `env` is removed from the child's environment.
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined || v === null) delete childEnv[k];
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd,
    env: childEnv,
    stdio: ['ignore', out, out],
    detached: true,
  });
  fs.closeSync(out);
  children.add(child);
  child.logFile = logFile;
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      children.delete(child);
      resolve({ code: -1, signal: null, error: err.message });
    });
  });
  return child;
}

/** Forks an IPC child (the load generator); killed with the rest at exit. */
export function forkChild(script, args = [], options = {}) {
  hook();
  const child = fork(script, args, { ...options, detached: true });
  children.add(child);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return child;
}

/** Sends `signal` to the child's process group (its PID), if it is still running. */
export function signalChild(child, signal) {
  killGroup(child, signal);
}

/** SIGTERM the child's group, wait up to `timeoutMs` for it to exit, then SIGKILL. */
export async function stopChild(child, timeoutMs = 15000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  killGroup(child, 'SIGTERM');
  const result = await Promise.race([child.exited, sleep(timeoutMs).then(() => null)]);
  if (result !== null) {
    // The leader is gone; make sure nothing it started outlives it.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
    return result;
  }
  killGroup(child, 'SIGKILL');
  return child.exited;
}

/** The last `lines` lines of a child's log, for error messages. */
export function logTail(logFile, lines = 15) {
  try {
    return fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function getStatus(port, pathName) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve(null));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** GET /v0/status as parsed JSON, or null. */
export async function fetchStatusJson(port) {
  const res = await getStatus(port, '/v0/status');
  if (res === null || res.status !== 200) return null;
  try {
    return JSON.parse(res.body);
  } catch {
    return null;
  }
}

/** Polls GET /v0/status on each port until all answer 200; fails early if `child` exits. */
export async function waitReady(child, ports, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(ports);
  while (pending.size > 0) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`Process ${child.pid} exited before it was ready:\n${logTail(child.logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Not ready within ${timeoutMs} ms on ports ${[...pending]}:\n${logTail(child.logFile)}`,
      );
    }
    for (const port of [...pending]) {
      const res = await getStatus(port, '/v0/status');
      if (res !== null && res.status === 200) pending.delete(port);
    }
    if (pending.size > 0) await sleep(100);
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports on 127.0.0.1 (bounded number of tries). */
export async function freePorts(count) {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below Linux's usual ephemeral range (32768 on), where outgoing connections take their local ports.
    const base = 20000 + Math.floor(Math.random() * (12000 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return Array.from({ length: count }, (_, i) => base + i);
  }
  throw new Error(`No ${count} consecutive free ports found`);
}
