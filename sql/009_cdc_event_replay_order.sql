-- Delta reads order events by (event_timestamp, lsn, kafka_offset, id) with missing LSNs and offsets
-- first. An index in exactly that order lets a window read stop after its LIMIT instead of
-- sorting the rest of the range (which made reads at full speed grow with the range). It replaces
-- cdc_event_time, whose leading column it keeps for min/max(event_timestamp).
create index cdc_event_replay_order
  on msr.cdc_event (event_timestamp, (coalesce(lsn, -1)), (coalesce(kafka_offset, -1)), id);

drop index msr.cdc_event_time;
