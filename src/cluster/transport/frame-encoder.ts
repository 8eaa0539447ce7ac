/**
 * Collects outgoing frames so that everything queued in one event-loop turn
 * leaves in one socket write.
 *
 * Frames are encoded straight into a large buffer, one after another; take()
 * hands out the bytes written since the last take() and later frames go
 * after them in the same buffer (the handed-out region is never written
 * again, so the socket may keep it until it is sent). A frame that does not
 * fit the room left starts a new buffer, of its own size if larger than the
 * usual chunk.
 */
import {
  FRAME_HEADER_BYTES,
  type Message,
  messageBodyBytes,
  writeFrameHeader,
  writeMessageBody,
} from './format.js';

/** A fresh output buffer's size: many small frames, one allocation. */
const CHUNK_BYTES = 64 * 1024;

export class FrameEncoder {
  #buf: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  /** Start of the bytes not yet taken, and end of the bytes written. */
  #start = 0;
  #end = 0;
  /** Filled buffers not yet taken. */
  #full: Buffer[] = [];
  #queuedBytes = 0;
  #frames = 0;

  /** Bytes queued since the last take(). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Frames queued since the last take(). */
  get frames(): number {
    return this.#frames;
  }

  /** Encodes one frame at the end of the queue; returns its size in bytes. */
  append(message: Message, id: number): number {
    const bodyBytes = messageBodyBytes(message);
    const frameBytes = FRAME_HEADER_BYTES + bodyBytes;
    if (this.#buf.length - this.#end < frameBytes) this.#rotate(frameBytes);
    const bodyOffset = writeFrameHeader(this.#buf, this.#end, message.type, id, bodyBytes);
    this.#end = writeMessageBody(message, this.#buf, bodyOffset);
    this.#queuedBytes += frameBytes;
    this.#frames++;
    return frameBytes;
  }

  /** The queued bytes, as few buffers as possible (usually one); the queue is then empty. */
  take(): Buffer[] {
    const out = this.#full;
    if (this.#end > this.#start) out.push(this.#buf.subarray(this.#start, this.#end));
    this.#full = [];
    this.#start = this.#end;
    this.#queuedBytes = 0;
    this.#frames = 0;
    return out;
  }

  /** Drops every queued frame (the connection they were for is gone). */
  clear(): void {
    this.take();
  }

  #rotate(frameBytes: number): void {
    if (this.#end > this.#start) this.#full.push(this.#buf.subarray(this.#start, this.#end));
    this.#buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, frameBytes));
    this.#start = 0;
    this.#end = 0;
  }
}
