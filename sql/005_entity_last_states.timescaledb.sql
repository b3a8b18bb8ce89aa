-- TimescaleDB: entity_last_states is a continuous aggregate holding, per 15-minute bucket and
-- entity, the last event of that bucket in replay order (ordered array_agg, because last() cannot
-- break ties on LSN and offset). Materialized only: the keyframe query reads the raw tail past the
-- watermark itself, which is cheaper than real-time aggregation over the whole unmaterialized range.

create materialized view msr.entity_last_states
with (timescaledb.continuous, timescaledb.materialized_only = true) as
select
  time_bucket(interval '15 minutes', event_timestamp) as bucket,
  source,
  table_schema,
  table_name,
  entity_id,
  (array_agg(
    row(event_timestamp, lsn, kafka_offset, id, op, after)::msr.event_state
    order by event_timestamp desc, lsn desc nulls last, kafka_offset desc nulls last, id desc
  ))[1] as last_event
from msr.cdc_event
group by 1, 2, 3, 4, 5
with no data;

create index entity_last_states_entity_bucket
  on msr.entity_last_states (source, table_schema, table_name, entity_id, bucket desc);

select add_continuous_aggregate_policy('msr.entity_last_states',
  start_offset => null,
  end_offset => interval '15 minutes',
  schedule_interval => interval '5 minutes');

-- Buckets before this time are materialized and exact: the aggregate's watermark, lowered to the
-- oldest change TimescaleDB has logged as invalidating materialized buckets (rows written late,
-- below the watermark, by any writer) until a refresh has processed it.
create function msr.entity_states_watermark() returns timestamptz
language sql stable as $$
  with cagg as (
    select c.mat_hypertable_id, c.raw_hypertable_id,
           _timescaledb_functions.cagg_watermark(c.mat_hypertable_id) as watermark
      from _timescaledb_catalog.continuous_agg c
     where c.user_view_schema = 'msr' and c.user_view_name = 'entity_last_states'
  )
  select coalesce(
    (select _timescaledb_functions.to_timestamp(least(
              cagg.watermark,
              (select min(h.lowest_modified_value)
                 from _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log h
                where h.hypertable_id = cagg.raw_hypertable_id),
              (select min(m.lowest_modified_value)
                 from _timescaledb_catalog.continuous_aggs_materialization_invalidation_log m
                where m.materialization_id = cagg.mat_hypertable_id and m.lowest_modified_value < cagg.watermark
                  -- TimescaleDB keeps the span before the earliest valid timestamp logged as invalid.
                  and m.greatest_modified_value > -210866803200000001)))
       from cagg),
    '-infinity'::timestamptz)
$$;

-- The last materialized row per entity among buckets in [lo, hi): DISTINCT ON over the
-- (entity, bucket desc) index, which TimescaleDB runs as a SkipScan.
create function msr.entity_last_states_between(lo timestamptz, hi timestamptz)
returns table (source text, table_schema text, table_name text, entity_id text, last_event msr.event_state)
language sql stable as $$
  select distinct on (s.source, s.table_schema, s.table_name, s.entity_id)
         s.source, s.table_schema, s.table_name, s.entity_id, s.last_event
    from msr.entity_last_states s
   where s.bucket >= lo and s.bucket < hi
   order by s.source, s.table_schema, s.table_name, s.entity_id, s.bucket desc
$$;
