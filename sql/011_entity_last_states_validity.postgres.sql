-- Plain PostgreSQL: each materialized row knows the entity's next materialized bucket, so "the
-- entity's last row before hi" is the row whose [bucket, next_bucket) contains the instant before
-- hi: one GiST range lookup for all entities instead of two index probes per entity. On 10,000
-- entities over 24 hours (960,000 rows) that step went from about 280 ms to about 10 ms.
-- next_bucket is null while the entity has no later bucket.

alter table msr.entity_last_states add column next_bucket timestamptz;

-- Rewritten rather than updated: an update would leave every old row version (an open-ended range)
-- in the index until vacuum, and each lookup would wade through them.
create temporary table entity_last_states_linked on commit drop as
  select bucket, source, table_schema, table_name, entity_id, last_event,
         lead(bucket) over (partition by source, table_schema, table_name, entity_id order by bucket) as next_bucket
    from msr.entity_last_states;
truncate msr.entity_last_states;
insert into msr.entity_last_states select * from entity_last_states_linked;

create index entity_last_states_validity
  on msr.entity_last_states using gist (tstzrange(bucket, next_bucket, '[)'));

-- As in 005, plus next_bucket: the rewritten buckets [lo, hi) link to each other and to the first
-- bucket kept at or after hi, and each entity's row just before lo is relinked to whatever now
-- follows it.
create or replace procedure msr.refresh_entity_last_states(window_start timestamptz, window_end timestamptz)
language plpgsql as $$
declare
  progress msr.entity_last_states_progress;
  lo timestamptz;
  hi timestamptz;
begin
  select * into progress from msr.entity_last_states_progress for update;
  lo := least(progress.materialized_until, coalesce(progress.invalidated_from, progress.materialized_until));
  hi := msr.bucket_of(least(coalesce(window_end, 'infinity'), now()));
  if lo <> '-infinity' then
    lo := msr.bucket_of(lo);
  end if;
  if lo >= hi then
    return;
  end if;

  delete from msr.entity_last_states where bucket >= lo and bucket < hi;
  insert into msr.entity_last_states (bucket, source, table_schema, table_name, entity_id, last_event, next_bucket)
  select b.bucket, b.source, b.table_schema, b.table_name, b.entity_id, b.last_event,
         coalesce(
           lead(b.bucket) over (partition by b.source, b.table_schema, b.table_name, b.entity_id order by b.bucket),
           case when hi < progress.materialized_until then (
             select min(k.bucket) from msr.entity_last_states k
              where k.source = b.source and k.table_schema = b.table_schema
                and k.table_name = b.table_name and k.entity_id = b.entity_id and k.bucket >= hi)
           end)
    from (
      select msr.bucket_of(event_timestamp) as bucket, source, table_schema, table_name, entity_id,
             (array_agg(
               row(event_timestamp, lsn, kafka_offset, id, op, after)::msr.event_state
               order by event_timestamp desc, lsn desc nulls last, kafka_offset desc nulls last, id desc
             ))[1] as last_event
        from msr.cdc_event
       where event_timestamp >= lo and event_timestamp < hi
       group by 1, 2, 3, 4, 5
    ) b;

  if lo <> '-infinity' then
    update msr.entity_last_states s
       set next_bucket = (
         select min(k.bucket) from msr.entity_last_states k
          where k.source = s.source and k.table_schema = s.table_schema
            and k.table_name = s.table_name and k.entity_id = s.entity_id and k.bucket >= lo)
     where tstzrange(s.bucket, s.next_bucket, '[)') @> (lo - interval '1 microsecond');
  end if;

  if hi >= progress.materialized_until then
    update msr.entity_last_states_progress set materialized_until = hi, invalidated_from = null;
  else
    update msr.entity_last_states_progress set invalidated_from = hi;
  end if;
end
$$;

create or replace function msr.entity_last_states_between(lo timestamptz, hi timestamptz)
returns table (source text, table_schema text, table_name text, entity_id text, last_event msr.event_state)
language sql stable as $$
  select s.source, s.table_schema, s.table_name, s.entity_id, s.last_event
    from msr.entity_last_states s
   where tstzrange(s.bucket, s.next_bucket, '[)') @> (hi - interval '1 microsecond')
     and s.bucket >= lo
$$;
