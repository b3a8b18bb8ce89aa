-- Kafka records the ingest could not decode, kept with their raw bytes and coordinates so nothing
-- is lost and an operator can replay or inspect them. Unique per record: redelivery is a no-op.
create table msr.ingest_error (
  id bigserial primary key,
  kafka_topic text not null,
  kafka_partition int not null,
  kafka_offset bigint not null,
  record_key bytea,
  record_value bytea,
  reason text not null,
  detail text not null,
  received_at timestamptz not null default now(),
  constraint ingest_error_kafka_coordinates unique (kafka_topic, kafka_partition, kafka_offset)
);

-- MSR's own ingest says ON CONFLICT DO NOTHING on the Kafka coordinates, so the per-row lookup
-- for writers that do not (a JDBC sink, a script) is skipped for it: on a partitioned table that
-- lookup probes every partition.
drop trigger cdc_event_skip_redelivered on msr.cdc_event;
create trigger cdc_event_skip_redelivered
  before insert on msr.cdc_event
  for each row
  when (new.kafka_topic is not null and new.kafka_offset is not null
        and current_setting('msr.writer', true) is distinct from 'ingest')
  execute function msr.skip_redelivered_event();
