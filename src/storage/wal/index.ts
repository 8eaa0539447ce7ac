/**
 * The write-ahead log: every write is appended here, framed and checksummed,
 * before it is acknowledged (writer.ts, group commit), and replayed on start
 * with a torn tail cut off (reader.ts). format.ts owns the bytes.
 */
export {
  encodeRecord,
  FILE_HEADER_BYTES,
  PAYLOAD_BYTES_MAX,
  PAYLOAD_BYTES_MIN,
  RECORD_HEADER_BYTES,
  type RecordRead,
  readRecord,
  recordBytes,
  sealRecord,
  WAL_FORMAT_VERSION,
  WAL_MAGIC,
} from './format.js';
export { type LogHeader, parseRecordLog, parseWal, readWal, type WalContents } from './reader.js';
export { type WalFile, WalWriter, type WalWriterOptions, type WalWriterStats } from './writer.js';
