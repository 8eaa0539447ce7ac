/**
 * Flag parsing for every command: node:util parseArgs in strict mode (unknown
 * flags are errors), its errors turned into one-line RingkvError('RINGKV_CONFIG')
 * messages. A flag given twice is an error too (parseArgs would keep the
 * last silently: `--data a --data b` would run on b). A negative number
 * after a flag is its value (`--timeout -1`), for the flag's own check.
 * parseFlags takes flags with values only; parseCommandLine also switches
 * (flags without a value, such as --json) and positional arguments.
 */
import { parseArgs } from 'node:util';
import { errorMessage, RingkvError } from '../util/errors.js';

/** Every flag takes a value, except --help. */
export type FlagValues<Name extends string> = { readonly [K in Name]?: string | undefined } & {
  readonly help: boolean;
};

/**
 *   parseFlags(['--url', 'http://127.0.0.1:8080'], ['url', 'data'])
 *   // -> { url: 'http://127.0.0.1:8080', help: false }
 */
export function parseFlags<Name extends string>(
  args: readonly string[],
  names: readonly Name[],
): FlagValues<Name> {
  return parseCommandLine(args, { flags: names }).flags;
}

export interface CommandLineSpec<Name extends string, Switch extends string> {
  /** Flags that take a value. */
  readonly flags: readonly Name[];
  /** Flags without a value. */
  readonly switches?: readonly Switch[];
  /** How many positional arguments the command takes (default none), and their synopsis for the error. */
  readonly positionals?: { readonly min: number; readonly max: number; readonly synopsis: string };
}

export interface CommandLine<Name extends string, Switch extends string> {
  readonly flags: FlagValues<Name>;
  readonly switches: { readonly [K in Switch]: boolean };
  readonly positionals: readonly string[];
}

/**
 * Flags, switches and positional arguments (`--` ends the flags, so that a
 * positional argument may start with '-'). The positional count is checked
 * unless --help is given.
 *
 *   parseCommandLine(['k', '--json'], { flags: ['url'], switches: ['json'], positionals: { min: 1, max: 1, synopsis: 'KEY' } })
 *   // -> { flags: { url: undefined, help: false }, switches: { json: true }, positionals: ['k'] }
 */
export function parseCommandLine<Name extends string, Switch extends string = never>(
  args: readonly string[],
  spec: CommandLineSpec<Name, Switch>,
): CommandLine<Name, Switch> {
  const options: Record<string, { type: 'string' } | { type: 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const name of spec.flags) options[name] = { type: 'string' };
  for (const name of spec.switches ?? []) options[name] = { type: 'boolean' };
  const { min, max, synopsis } = spec.positionals ?? { min: 0, max: 0, synopsis: '' };
  let parsed: {
    values: Record<string, string | boolean | undefined>;
    positionals: string[];
    tokens: { kind: string; name?: string }[];
  };
  try {
    parsed = parseArgs({
      args: negativeNumbersJoined(args, spec.flags),
      options,
      strict: true,
      allowPositionals: max > 0,
      tokens: true,
    }) as typeof parsed;
  } catch (err) {
    // parseArgs messages end with a period and are sometimes followed by hints; keep the first sentence.
    const message = errorMessage(err).split(/\.(\s|$)/)[0]!;
    throw new RingkvError('RINGKV_CONFIG', message, { cause: err });
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || token.name === undefined) continue;
    if (seen.has(token.name))
      throw new RingkvError('RINGKV_CONFIG', `Option '--${token.name}' is given twice`);
    seen.add(token.name);
  }
  const help = parsed.values.help === true;
  const flags: Record<string, string | boolean | undefined> = { help };
  for (const name of spec.flags) flags[name] = parsed.values[name] as string | undefined;
  const switches: Record<string, boolean> = {};
  for (const name of spec.switches ?? []) switches[name] = parsed.values[name] === true;
  const count = parsed.positionals.length;
  if (!help && (count < min || count > max)) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `${count < min ? 'Missing' : 'Too many'} arguments: expected ${synopsis}`,
    );
  }
  return {
    flags: flags as FlagValues<Name>,
    switches: switches as CommandLine<Name, Switch>['switches'],
    positionals: parsed.positionals,
  };
}

/**
 * `--flag -5` as `--flag=-5`. parseArgs calls a value that starts with '-'
 * ambiguous (it may be the next flag, the value forgotten), which says
 * nothing of what the flag takes. No flag is spelled '-' and a digit, so a
 * negative number is the flag's value, and the flag's own check refuses it
 * naming what it expects (`Bad --timeout: expected a positive integer`).
 */
function negativeNumbersJoined(args: readonly string[], flags: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    // After `--` every argument is positional.
    if (arg === '--') return [...joined, ...args.slice(i)];
    if (arg.startsWith('--') && flags.includes(arg.slice(2)) && next !== undefined && /^-[0-9]/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}
