/**
 * Which failed replica writes become hints: the coordinator's hook
 * (ClusterStore's onReplicaWriteFailed). A peer that was down, shutting
 * down, or did not answer in time (late replicas included) gets a hint,
 * which records the request's `from` (delivery places it by that); other failures (a
 * refused secret, a bad request) would fail the same way again. The request
 * does not wait for the hint; a hint that cannot be kept (budget full, a
 * write too old to hint, disk error) is counted by the hint store and logged
 * here, at most once per interval per kind. Anti-entropy and read repair
 * cover what is dropped.
 *
 *   const store = new ClusterStore({ ..., onReplicaWriteFailed: hintPolicy(selfUrl, hints, log) });
 */
import type { Entry } from '../../storage/index.js';
import { errorMessage, isRingkvError } from '../../util/errors.js';
import type { HintStore } from './hint-store.js';

/** How often a failure of the same kind is logged at most: a dead peer must not flood the log. */
const HINT_LOG_INTERVAL_MS = 10_000;

export function hintPolicy(
  selfUrl: string,
  hints: HintStore,
  log: (line: string) => void,
): (peer: string, entry: Entry, err: unknown, from?: number) => void {
  const lastLoggedMs = { dropped: 0, tooOld: 0, failed: 0 };
  const logAtMost = (kind: keyof typeof lastLoggedMs, line: string): void => {
    const nowMs = Date.now();
    if (nowMs - lastLoggedMs[kind] < HINT_LOG_INTERVAL_MS) return;
    lastLoggedMs[kind] = nowMs;
    log(line);
  };
  return (peer, entry, err, from) => {
    if (peer === selfUrl) return;
    // RINGKV_CLOSED: the peer was shutting down when the write reached it.
    const missed = ['RINGKV_UNAVAILABLE', 'RINGKV_TIMEOUT', 'RINGKV_CLOSED'] as const;
    if (!missed.some((code) => isRingkvError(err, code))) return;
    void hints.add(peer, entry, from).then(
      (kept) => {
        if (kept) return;
        if (hints.tooOld(entry)) {
          logAtMost('tooOld', `Hint for ${peer} dropped: the write is older than hints are kept`);
        } else {
          logAtMost('dropped', `Hint for ${peer} dropped: the hint budget is full`);
        }
      },
      (addErr: unknown) => {
        // Adds racing the shutdown's close are expected.
        if (!isRingkvError(addErr, 'RINGKV_CLOSED'))
          logAtMost('failed', `Cannot keep a hint for ${peer}: ${errorMessage(addErr)}`);
      },
    );
  };
}
