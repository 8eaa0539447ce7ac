/**
 * Consistency receipts on the wire: what a traced request (`trace=1` on
 * /v0/entity) answers besides its usual status and body, as header fields.
 *
 *   x-ringkv-version: 116526873042108416              (decimal; absent when no replica had a version)
 *   x-ringkv-replicas: http://127.0.0.1:8081=ok,http://127.0.0.1:8082=stale
 *   x-ringkv-read-repair: started                     (reads only: started, skipped, none or pending)
 *
 * The version is the 64-bit hybrid clock value in decimal (its top 48 bits
 * are milliseconds since the epoch: version >> 16). Replicas are listed in
 * the order they answered, then those still pending, each `url=outcome`
 * (cluster/receipt.ts defines the outcomes). Requests without `trace=1` get
 * none of this and build nothing for it.
 */
import { Receipt } from '../../cluster/receipt.js';
import type { PutOptions } from '../../cluster/store.js';
import type { EntityParams } from '../params.js';
import type { ExtraHeaders } from './context.js';

export const VERSION_HEADER = 'x-ringkv-version';
export const REPLICAS_HEADER = 'x-ringkv-replicas';
export const READ_REPAIR_HEADER = 'x-ringkv-read-repair';

/** A new, empty receipt for a request with trace=1; undefined for the others. */
export function receiptFor(params: EntityParams): Receipt | undefined {
  return params.trace ? new Receipt() : undefined;
}

/** The store's options: the parameters themselves, or with the receipt to fill in. */
export function storeOptions(params: EntityParams, receipt: Receipt | undefined): PutOptions {
  return receipt === undefined
    ? params
    : { ack: params.ack, from: params.from, ttlMs: params.ttlMs, receipt };
}

/**
 * The receipt's header fields (names and values alternating); undefined
 * without a receipt, or for one the store never got to fill in (a request
 * refused before any replica was asked, e.g. by a closing node).
 */
export function receiptHeaders(receipt: Receipt | undefined): ExtraHeaders | undefined {
  if (receipt === undefined || !receipt.sealed) return undefined;
  const headers: string[] = [];
  if (receipt.version !== undefined) headers.push(VERSION_HEADER, receipt.version.toString());
  headers.push(REPLICAS_HEADER, receipt.replicas.map((r) => `${r.node}=${r.outcome}`).join(','));
  if (receipt.readRepair !== undefined) headers.push(READ_REPAIR_HEADER, receipt.readRepair);
  return headers;
}
