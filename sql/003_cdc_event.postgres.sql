-- Plain PostgreSQL: cdc_event as a table partitioned by day on event_timestamp. A default
-- partition takes rows of any time, so a writer is never refused for lack of a partition;
-- msr.prepare_storage moves such rows into their day when that day's partition is made.

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
) partition by range (event_timestamp);

alter sequence msr.cdc_event_id_seq owned by msr.cdc_event.id;

create table msr.cdc_event_default partition of msr.cdc_event default;

-- Makes one partition per UTC day in [from_day, to_day], moving any rows the default partition
-- holds for that day. Returns how many partitions it made.
create function msr.prepare_storage(from_day date, to_day date) returns int
language plpgsql as $$
declare
  day date;
  part text;
  made int := 0;
  lo timestamptz;
  hi timestamptz;
begin
  for day in select generate_series(from_day, to_day, interval '1 day')::date loop
    part := 'cdc_event_p' || to_char(day, 'YYYYMMDD');
    continue when to_regclass('msr.' || part) is not null;
    lo := day::timestamp at time zone 'UTC';
    hi := (day + 1)::timestamp at time zone 'UTC';
    execute format('create table msr.%I (like msr.cdc_event including defaults including constraints)', part);
    execute format(
      'with moved as (delete from msr.cdc_event_default where event_timestamp >= $1 and event_timestamp < $2 returning *)
       insert into msr.%I select * from moved', part) using lo, hi;
    execute format('alter table msr.cdc_event attach partition msr.%I for values from (%L) to (%L)', part, lo, hi);
    made := made + 1;
  end loop;
  return made;
end
$$;

select msr.prepare_storage(current_date - 8, current_date + 7);
