/**
 * The torture run's command line: `npm run torture -- [--duration S]
 * [--seed N] [--nodes K] [--rate R] [--results DIR]`. Bad flags print one
 * line and exit 2 (main.ts).
 */
import { fileURLToPath } from 'node:url';

export interface TortureOptions {
  /** How long the abuse loop runs, seconds; the load runs through it. */
  readonly durationS: number;
  readonly seed: number;
  /** Nodes in the cluster: at least 3, since the load asks for ack=2&from=3. */
  readonly nodes: number;
  /** Requests per second of the load, all nodes together. */
  readonly rate: number;
  /** Where the report card is written (default: bench/results/ of this checkout). */
  readonly resultsDir: string;
  /** The command as typed, for the card. */
  readonly command: string;
}

export const DEFAULT_DURATION_S = 120;
export const DURATION_MAX_S = 3600;
export const NODES_MAX = 7;
export const DEFAULT_RATE = 150;

/** bench/results/ of the checkout this file was compiled in (dist/test/torture/ is three levels down). */
const DEFAULT_RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

export class UsageError extends Error {}

export function parseOptions(argv: readonly string[]): TortureOptions {
  let durationS = DEFAULT_DURATION_S;
  let seed: number | undefined;
  let nodes = 3;
  let rate = DEFAULT_RATE;
  let resultsDir = DEFAULT_RESULTS_DIR;
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const text = argv[i + 1];
    if (text === undefined) throw new UsageError(`Missing value after ${flag}`);
    switch (flag) {
      case '--duration':
        durationS = integerIn(flag, text, 1, DURATION_MAX_S);
        break;
      case '--seed':
        seed = integerIn(flag, text, 0, 2 ** 32 - 1);
        break;
      case '--nodes':
        nodes = integerIn(flag, text, 3, NODES_MAX);
        break;
      case '--rate':
        rate = integerIn(flag, text, 1, 5000);
        break;
      case '--results':
        resultsDir = text;
        break;
      default:
        throw new UsageError(
          `Unknown flag ${flag}: expected --duration, --seed, --nodes, --rate or --results`,
        );
    }
  }
  seed ??= Math.floor(Math.random() * 2 ** 32);
  const command = `npm run torture -- --duration ${durationS} --seed ${seed} --nodes ${nodes}${rate === DEFAULT_RATE ? '' : ` --rate ${rate}`}`;
  return { durationS, seed, nodes, rate, resultsDir, command };
}

function integerIn(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(
      `Bad ${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}
