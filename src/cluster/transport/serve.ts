/**
 * Serving one internode request: decoded message in, answer message out. The
 * binary connection (frame-server.ts) and the plain-HTTP endpoint
 * (http-endpoint.ts) both call this, so the two protocols answer alike.
 */

import type { Entry } from '../../storage/index.js';
import { encodedEntryBytes } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import type { InternodeHandler, ScanPage } from './contract.js';
import { batchBodyBytes, FRAME_HEADER_BYTES, type Message, MessageType } from './format.js';

export interface ServeLimits {
  readonly frameBytesMax: number;
  readonly scanEntriesMax: number;
  /** Handler failures that are not RingkvErrors (bugs), for the node's log. */
  readonly onError?: ((err: unknown) => void) | undefined;
}

/** The answer to a request message; never rejects (failures become ERROR answers). */
export async function serveMessage(
  handler: InternodeHandler,
  request: Message,
  limits: ServeLimits,
): Promise<Message> {
  try {
    switch (request.type) {
      case MessageType.Write: {
        const newerVersion = await handler.write(request.entry);
        return newerVersion === undefined ? { type: MessageType.Ok } : { type: MessageType.Ok, newerVersion };
      }
      case MessageType.Read:
        return { type: MessageType.Entry, entry: await handler.read(request.key) };
      case MessageType.Scan: {
        const limit = Math.max(1, Math.min(request.limit, limits.scanEntriesMax));
        const page = await handler.scan(request.start, request.end, limit);
        return fitBatch(page, limits.frameBytesMax);
      }
      case MessageType.Ping:
        return pong(handler);
      case MessageType.Leaving:
        handler.leaving?.(request.node);
        return { type: MessageType.LeavingAck };
      case MessageType.AntiEntropy:
        if (handler.antiEntropy === undefined) {
          return {
            type: MessageType.Error,
            code: 'RINGKV_BAD_REQUEST',
            message: 'This node does not serve anti-entropy',
          };
        }
        return { type: MessageType.AntiEntropyAnswer, body: await handler.antiEntropy(request.body) };
      case MessageType.Membership:
        if (handler.membership === undefined) return notServed('membership');
        return { type: MessageType.MembershipAnswer, body: await handler.membership(request.body) };
      case MessageType.Stream:
        if (handler.stream === undefined) return notServed('streaming');
        return { type: MessageType.StreamPage, body: await handler.stream(request.body) };
      case MessageType.Move:
        if (handler.move === undefined) return notServed('moves');
        return { type: MessageType.MoveAnswer, body: await handler.move(request.body) };
      default:
        return {
          type: MessageType.Error,
          code: 'RINGKV_PROTOCOL',
          message: `Not a request type: ${request.type}`,
        };
    }
  } catch (err) {
    return errorAnswer(err, limits);
  }
}

function notServed(what: string): Message {
  return { type: MessageType.Error, code: 'RINGKV_BAD_REQUEST', message: `This node does not serve ${what}` };
}

/** The PING answer: the node's wall clock when it has one (for the peer's skew estimate). */
export function pong(handler: InternodeHandler): Message {
  const wallMs = handler.wallMs?.();
  return wallMs === undefined ? { type: MessageType.Pong } : { type: MessageType.Pong, wallMs };
}

/**
 * A handler's failure as an ERROR answer. An unexpected one (a bug) is
 * reported to this node (onError: its log) and crosses the wire without its
 * text, which could reach a client in a coordinator's 504.
 */
export function errorAnswer(err: unknown, limits: Pick<ServeLimits, 'onError'>): Message {
  if (isRingkvError(err)) return { type: MessageType.Error, code: err.code, message: err.message };
  limits.onError?.(err);
  return {
    type: MessageType.Error,
    code: 'RINGKV_UNAVAILABLE',
    message: "Internal error: see that node's log",
  };
}

/**
 * A scan page as a BATCH answer that fits one frame: entries past the frame
 * limit are left out and `more` set, so the caller asks again after the last
 * entry sent. One entry always fits (the frame limit covers a maximal entry).
 */
export function fitBatch(page: ScanPage, frameBytesMax: number): Message {
  const room = frameBytesMax - FRAME_HEADER_BYTES;
  if (batchBodyBytes(page.entries) <= room) {
    return { type: MessageType.Batch, entries: page.entries, more: page.more };
  }
  const entries: Entry[] = [];
  let bytes = batchBodyBytes([]);
  for (const entry of page.entries) {
    bytes += encodedEntryBytes(entry);
    if (bytes > room && entries.length > 0) break;
    entries.push(entry);
  }
  return { type: MessageType.Batch, entries, more: true };
}
