-- Indexes and the redelivery guard on cdc_event, the same in both dialects.

-- "Last row per entity before T": TimescaleDB's (multi-column) SkipScan and the plain dialect's
-- recursive skip scan both walk this index.
create index cdc_event_entity_time
  on msr.cdc_event (source, table_schema, table_name, entity_id, event_timestamp desc);

-- Delta streaming reads events in replay order from a position.
create index cdc_event_time on msr.cdc_event (event_timestamp, id);

-- Truncates are rare; finding the last one per table must not scan the table.
create index cdc_event_truncates
  on msr.cdc_event (source, table_schema, table_name, event_timestamp desc) where op = 't';

-- A unique index on a partitioned table or hypertable must contain the time column. One Kafka
-- record always decodes to the same event_timestamp, so this still makes redelivery a no-op for
-- INSERT ... ON CONFLICT DO NOTHING.
create unique index cdc_event_kafka_coordinates
  on msr.cdc_event (kafka_topic, kafka_partition, kafka_offset, event_timestamp);

-- Writers that do not say ON CONFLICT (a JDBC sink, an operator's script) must find redelivery a
-- no-op too, not an error, so a row whose Kafka coordinates are already stored is skipped.
create function msr.skip_redelivered_event() returns trigger
language plpgsql as $$
begin
  if exists (
    select 1 from msr.cdc_event
    where kafka_topic = new.kafka_topic
      and kafka_partition = new.kafka_partition
      and kafka_offset = new.kafka_offset
  ) then
    return null;
  end if;
  return new;
end
$$;

create trigger cdc_event_skip_redelivered
  before insert on msr.cdc_event
  for each row
  when (new.kafka_topic is not null and new.kafka_offset is not null)
  execute function msr.skip_redelivered_event();
