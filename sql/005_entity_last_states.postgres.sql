-- Plain PostgreSQL: entity_last_states is a table with the same columns as the TimescaleDB
-- continuous aggregate, filled by the same entry point:
--   CALL refresh_continuous_aggregate('msr.entity_last_states', NULL, NULL)
-- Rows written below the materialized range invalidate it (statement triggers), so the keyframe
-- query never trusts a bucket that has changed since it was materialized.

create table msr.entity_last_states (
  bucket timestamptz not null,
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  last_event msr.event_state not null
);

create unique index entity_last_states_entity_bucket
  on msr.entity_last_states (source, table_schema, table_name, entity_id, bucket desc);

create table msr.entity_last_states_progress (
  id int primary key default 1 check (id = 1),
  materialized_until timestamptz not null default '-infinity',
  invalidated_from timestamptz
);
insert into msr.entity_last_states_progress default values;

create function msr.entity_states_watermark() returns timestamptz
language sql stable as $$
  select least(materialized_until, coalesce(invalidated_from, materialized_until))
    from msr.entity_last_states_progress
$$;

create function msr.invalidate_entity_last_states() returns trigger
language plpgsql as $$
declare
  earliest timestamptz;
begin
  if tg_op = 'DELETE' then
    select min(event_timestamp) into earliest from old_rows;
  else
    select min(event_timestamp) into earliest from new_rows;
  end if;
  if tg_op = 'UPDATE' then
    select least(earliest, min(event_timestamp)) into earliest from old_rows;
  end if;
  update msr.entity_last_states_progress
     set invalidated_from = least(coalesce(invalidated_from, earliest), earliest)
   where earliest < materialized_until;
  return null;
end
$$;

create trigger cdc_event_invalidate_on_insert after insert on msr.cdc_event
  referencing new table as new_rows for each statement execute function msr.invalidate_entity_last_states();
create trigger cdc_event_invalidate_on_update after update on msr.cdc_event
  referencing old table as old_rows new table as new_rows
  for each statement execute function msr.invalidate_entity_last_states();
create trigger cdc_event_invalidate_on_delete after delete on msr.cdc_event
  referencing old table as old_rows for each statement execute function msr.invalidate_entity_last_states();

-- Materializes complete buckets up to window_end (or now), starting wherever the table stopped
-- being exact; window_start is accepted for TimescaleDB's signature but never skips a stale bucket.
create procedure msr.refresh_entity_last_states(window_start timestamptz, window_end timestamptz)
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
  insert into msr.entity_last_states (bucket, source, table_schema, table_name, entity_id, last_event)
  select msr.bucket_of(event_timestamp), source, table_schema, table_name, entity_id,
         (array_agg(
           row(event_timestamp, lsn, kafka_offset, id, op, after)::msr.event_state
           order by event_timestamp desc, lsn desc nulls last, kafka_offset desc nulls last, id desc
         ))[1]
    from msr.cdc_event
   where event_timestamp >= lo and event_timestamp < hi
   group by 1, 2, 3, 4, 5;

  if hi >= progress.materialized_until then
    update msr.entity_last_states_progress set materialized_until = hi, invalidated_from = null;
  else
    update msr.entity_last_states_progress set invalidated_from = hi;
  end if;
end
$$;

-- TimescaleDB's entry point, for the one aggregate this schema has.
create procedure public.refresh_continuous_aggregate(
  continuous_aggregate regclass, window_start timestamptz, window_end timestamptz)
language plpgsql as $$
begin
  if continuous_aggregate <> 'msr.entity_last_states'::regclass then
    raise exception '% is not a continuous aggregate', continuous_aggregate;
  end if;
  call msr.refresh_entity_last_states(window_start, window_end);
end
$$;

-- The last materialized row per entity among buckets in [lo, hi). Plain PostgreSQL has no skip
-- scan, so a recursive CTE jumps from one entity to the next along the index, then reads each
-- entity's newest bucket below hi: two index probes per entity instead of a scan of every bucket.
create function msr.entity_last_states_between(lo timestamptz, hi timestamptz)
returns table (source text, table_schema text, table_name text, entity_id text, last_event msr.event_state)
language sql stable as $$
  with recursive entity as (
    (select s.source, s.table_schema, s.table_name, s.entity_id
       from msr.entity_last_states s
      order by s.source, s.table_schema, s.table_name, s.entity_id
      limit 1)
    union all
    select n.source, n.table_schema, n.table_name, n.entity_id
      from entity e
      cross join lateral (
        select s.source, s.table_schema, s.table_name, s.entity_id
          from msr.entity_last_states s
         where (s.source, s.table_schema, s.table_name, s.entity_id)
             > (e.source, e.table_schema, e.table_name, e.entity_id)
         order by s.source, s.table_schema, s.table_name, s.entity_id
         limit 1
      ) n
  )
  select e.source, e.table_schema, e.table_name, e.entity_id, b.last_event
    from entity e
    cross join lateral (
      select s.last_event
        from msr.entity_last_states s
       where s.source = e.source and s.table_schema = e.table_schema
         and s.table_name = e.table_name and s.entity_id = e.entity_id
         and s.bucket >= lo and s.bucket < hi
       order by s.bucket desc
       limit 1
    ) b
$$;
