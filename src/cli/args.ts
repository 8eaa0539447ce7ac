/**
 * Flag parsing for every command: node:util parseArgs in strict mode (unknown
 * flags and stray arguments are errors), its errors turned into one-line
 * RingkvError('RINGKV_CONFIG') messages.
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
  const options: Record<string, { type: 'string' } | { type: 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const name of names) options[name] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (err) {
    // parseArgs messages end with a period and are sometimes followed by hints; keep the first sentence.
    const message = errorMessage(err).split(/\.(\s|$)/)[0]!;
    throw new RingkvError('RINGKV_CONFIG', message, { cause: err });
  }
  const flags: Record<string, string | boolean | undefined> = { help: values.help === true };
  for (const name of names) flags[name] = values[name] as string | undefined;
  return flags as FlagValues<Name>;
}
