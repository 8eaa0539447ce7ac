/**
 * Cuts a byte stream into frames (format.ts), whatever the TCP chunking:
 * a frame split over many chunks and many frames in one chunk decode alike.
 *
 * Frames that lie whole inside a chunk are handed out as views into it (no
 * copy); a frame that straddles chunks is assembled in a buffer that starts
 * at 64 KiB (or what has arrived) and doubles as its bytes come, up to the
 * frame's size: a peer that announces many large frames and sends nothing
 * more reserves little (4 bytes must not hold 8 MiB). A length beyond
 * `frameBytesMax` (or too short to hold type and id) throws RINGKV_PROTOCOL
 * before anything is allocated: the caller closes the connection.
 *
 * The body handed to onFrame is only valid during the call: the callee
 * copies what it keeps (format.ts's decoders do).
 */
import { RingkvError } from '../../util/errors.js';
import { SizedBody } from '../../util/sized-body.js';
import { FRAME_HEADER_BYTES, FRAME_LENGTH_MIN } from './format.js';

/** A straddling frame's first buffer holds at most this much until more of it arrives. */
const PARTIAL_BYTES_INITIAL = 64 * 1024;

export type FrameListener = (type: number, id: number, body: Buffer) => void;

export class FrameDecoder {
  readonly #frameBytesMax: number;
  readonly #onFrame: FrameListener;
  /** Up to 3 bytes of a length field cut by a chunk boundary. */
  #carry: Buffer | undefined;
  /** A frame being assembled across chunks. */
  #partial: SizedBody | undefined;

  constructor(frameBytesMax: number, onFrame: FrameListener) {
    this.#frameBytesMax = frameBytesMax;
    this.#onFrame = onFrame;
  }

  /** true when no partial frame is buffered (a clean boundary). */
  get idle(): boolean {
    return this.#carry === undefined && this.#partial === undefined;
  }

  /** Bytes held for a frame being assembled (its buffer's size). */
  get reservedBytes(): number {
    return this.#partial?.reserved ?? 0;
  }

  /** Feeds the next chunk of the stream; throws RINGKV_PROTOCOL on a bad frame length. */
  push(chunk: Buffer): void {
    let offset = 0;
    if (this.#partial !== undefined) {
      const partial = this.#partial;
      offset = partial.fill(chunk);
      if (!partial.complete) return;
      this.#partial = undefined;
      const frame = partial.value();
      this.#emit(frame, 0, frame.length);
    } else if (this.#carry !== undefined) {
      chunk = Buffer.concat([this.#carry, chunk]);
      this.#carry = undefined;
    }

    const end = chunk.length;
    while (end - offset >= 4) {
      const frameBytes = 4 + this.#checkLength(chunk.readUInt32BE(offset));
      if (end - offset < frameBytes) {
        const partial = new SizedBody(frameBytes, PARTIAL_BYTES_INITIAL);
        partial.fill(chunk, offset);
        this.#partial = partial;
        return;
      }
      this.#emit(chunk, offset, offset + frameBytes);
      offset += frameBytes;
    }
    if (offset < end) this.#carry = Buffer.from(chunk.subarray(offset, end));
  }

  #checkLength(length: number): number {
    if (length < FRAME_LENGTH_MIN || length + 4 > this.#frameBytesMax) {
      throw new RingkvError(
        'RINGKV_PROTOCOL',
        `Bad internode frame length: ${length} (allowed ${FRAME_LENGTH_MIN}..${this.#frameBytesMax - 4})`,
      );
    }
    return length;
  }

  #emit(buf: Buffer, start: number, end: number): void {
    this.#onFrame(
      buf[start + 4]!,
      buf.readUInt32BE(start + 5),
      buf.subarray(start + FRAME_HEADER_BYTES, end),
    );
  }
}
