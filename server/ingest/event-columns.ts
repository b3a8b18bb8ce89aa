import { copyField } from './copy-text.js';
import { isCopyReady, type ChangeEvent, type CopyReadyEvent } from './change.js';

// The columns of msr.cdc_event a change fills, in the order both of the writer's COPY statements
// (staging.ts) list them and the decoder writes them (copyReady), so that order is written once.

/** The column list, from `source` to `tx_id`, for the writer's SQL. */
export const EVENT_COLUMNS = 'source, table_schema, table_name, entity_id, op, before, after, lsn, tx_id';

/** A change's values of EVENT_COLUMNS as COPY text: tab-separated, without the end of line. */
export function eventColumnsText(event: ChangeEvent | CopyReadyEvent): string {
  if (isCopyReady(event)) return event.copyColumns;
  const { source, schema, table, entityId, op, before, after, lsn, txId } = event;
  return `${copyField(source)}\t${copyField(schema)}\t${copyField(table)}\t${copyField(entityId)}\t${op}\t${copyField(before)}\t${copyField(after)}\t${copyField(lsn)}\t${copyField(txId)}`;
}

/**
 * The change as the decoder hands it on: a keyed change's columns as COPY text (CopyReadyEvent);
 * a keyless change or a truncate whole, for the writer to read.
 */
export function copyReady(event: ChangeEvent): ChangeEvent | CopyReadyEvent {
  if (event.keyless || event.op === 't') return event;
  const { eventTimeUs, entityId, op, unavailable } = event;
  return { eventTimeUs, entityId, op, unavailable, copyColumns: eventColumnsText(event) };
}
