-- TimescaleDB: cdc_event as a hypertable with one chunk per day on event_timestamp.

create table msr.cdc_event (
  event_timestamp timestamptz not null,
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  op char(1) not null constraint cdc_event_op_check check (op in ('c', 'u', 'd', 'r', 't')),
  before jsonb,
  after jsonb,
  lsn bigint,
  tx_id bigint,
  kafka_topic text,
  kafka_partition int,
  kafka_offset bigint,
  ingested_at timestamptz not null default now(),
  id bigint not null default nextval('msr.cdc_event_id_seq')
);

alter sequence msr.cdc_event_id_seq owned by msr.cdc_event.id;

select create_hypertable('msr.cdc_event', by_range('event_timestamp', interval '1 day'), create_default_indexes => false);

-- Chunks appear on demand here; the function exists so the server can call it in both dialects.
create function msr.prepare_storage(from_day date, to_day date) returns int
language sql as $$ select 0 $$;
