/**
 * Reading a /metrics answer in tests: its samples by name and labels, and
 * promtool's verdict on it (Debian's prometheus package; `.ci/run` installs
 * it). Tests that need promtool skip with the reason when it is missing.
 */
import { spawnSync } from 'node:child_process';

export type Samples = Map<string, number>;

function key(name: string, labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${name}${JSON.stringify(pairs)}`;
}

/** Every sample of an exposition (comments left out), keyed by name and labels in any order. */
export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`Not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = match[3]!;
    samples.set(key(match[1]!, labels), raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw));
  }
  return samples;
}

/** One sample's value, or undefined when the exposition has no such series. */
export function sampleValue(
  samples: Samples,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  return samples.get(key(name, labels));
}

/** The names of the families an exposition declares with # HELP. */
export function helpNames(text: string): string[] {
  return [...text.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!);
}

/** Why promtool cannot be used here, or undefined when it can. */
export function promtoolMissing(): string | undefined {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined) return `promtool not found (${probe.error.message}): .ci/run installs it`;
  return probe.status === 0 ? undefined : `promtool --version exited ${probe.status}`;
}

/** `promtool check metrics` on an exposition: its exit status and what it printed. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}
