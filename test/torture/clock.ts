/**
 * Shifting one node's wall clock. With libfaketime (Debian package
 * `faketime`) the node runs with it preloaded: the C library's clock calls
 * themselves are shifted, as a badly set system clock would be, monotonic
 * time left alone. Without it the shift is skipped (the card says so):
 * ringkv's own RINGKV_CLOCK_OFFSET_MS is what the tests use, and the torture
 * does not stand in for them.
 *
 *   const clock = await ClockShifter.detect();
 *   spawn(..., { env: clock.env(300) });   // 300 ms ahead
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

const LIBRARY_PATHS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];
/** The shift used to check that the library works on this Node. */
const PROBE_OFFSET_MS = 5000;

export class ClockShifter {
  readonly #library: string | undefined;
  /** Why clocks cannot be shifted, or undefined when they can. */
  readonly unavailable: string | undefined;

  private constructor(library: string | undefined, unavailable: string | undefined) {
    this.#library = library;
    this.unavailable = unavailable;
  }

  /** Finds libfaketime and checks that a Node process under it sees the shifted clock. */
  static async detect(): Promise<ClockShifter> {
    const library = LIBRARY_PATHS.find((path) => existsSync(path));
    if (library === undefined) {
      return new ClockShifter(undefined, 'libfaketime not installed (apt-get install -y faketime)');
    }
    const shifter = new ClockShifter(library, undefined);
    const before = Date.now();
    const seen = await new Promise<number | undefined>((resolve) => {
      execFile(
        process.execPath,
        ['-e', 'process.stdout.write(String(Date.now()))'],
        { env: { ...process.env, ...shifter.env(PROBE_OFFSET_MS) }, timeout: 10_000 },
        (err, stdout) => resolve(err ? undefined : Number(stdout)),
      );
    });
    const shift = seen === undefined ? undefined : seen - before;
    if (shift === undefined || shift < PROBE_OFFSET_MS - 500 || shift > PROBE_OFFSET_MS + 3000) {
      return new ClockShifter(
        undefined,
        `libfaketime at ${library} does not shift Node's clock (saw ${shift} ms)`,
      );
    }
    return shifter;
  }

  /** Environment for a node whose clock runs `offsetMs` ahead (negative: behind); {} for none. */
  env(offsetMs: number): Record<string, string> {
    if (offsetMs === 0 || this.#library === undefined) return {};
    const sign = offsetMs < 0 ? '-' : '+';
    return {
      LD_PRELOAD: this.#library,
      FAKETIME: `${sign}${(Math.abs(offsetMs) / 1000).toFixed(3)}`,
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    };
  }
}
