-- The state at the retention cutoff, kept in two tables so a rebuild never disturbs readers: the
-- inactive one is rebuilt, then snapshot_pointer flips to it in the same transaction.

create table msr.earliest_snapshot_a (
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  last_event msr.event_state not null,
  primary key (source, table_schema, table_name, entity_id)
);

create table msr.earliest_snapshot_b (like msr.earliest_snapshot_a including all);

create table msr.snapshot_pointer (
  id int primary key default 1 check (id = 1),
  active char(1) not null default 'a' check (active in ('a', 'b')),
  -- The snapshot holds the state made by every event before this time.
  cutoff_time timestamptz not null default '-infinity',
  last_refresh timestamptz
);
insert into msr.snapshot_pointer default values;

-- The state of every live entity at time t (events with event_timestamp <= t): the active
-- snapshot, overlaid with entity_last_states buckets up to the watermark, overlaid with the raw
-- events after it. A later layer wins; 'd' removes an entity; 't' removes every entity of its
-- table that changed before it. tables, when given, are 'schema.table' names to keep.
create function msr.entity_states_at(t timestamptz, tables text[] default null)
returns table (source text, table_schema text, table_name text, entity_id text, last_event msr.event_state)
language sql stable as $$
  with pointer as (
    select p.active, p.cutoff_time from msr.snapshot_pointer p where p.id = 1
  ),
  bounds as (
    select p.cutoff_time as cutoff,
           greatest(p.cutoff_time, least(msr.entity_states_watermark(), msr.bucket_of(t))) as tail_from
      from pointer p
  ),
  layer as (
    select 1 as rank, s.source, s.table_schema, s.table_name, s.entity_id, s.last_event
      from msr.earliest_snapshot_a s
     where (select active from pointer) = 'a'
    union all
    select 1, s.source, s.table_schema, s.table_name, s.entity_id, s.last_event
      from msr.earliest_snapshot_b s
     where (select active from pointer) = 'b'
    union all
    select 2, a.source, a.table_schema, a.table_name, a.entity_id, a.last_event
      from bounds b, msr.entity_last_states_between(b.cutoff, b.tail_from) a
    union all
    select * from (
      select distinct on (e.source, e.table_schema, e.table_name, e.entity_id)
             3, e.source, e.table_schema, e.table_name, e.entity_id,
             row(e.event_timestamp, e.lsn, e.kafka_offset, e.id, e.op, e.after)::msr.event_state
        from bounds b
        join msr.cdc_event e on e.event_timestamp >= b.tail_from and e.event_timestamp <= t
       order by e.source, e.table_schema, e.table_name, e.entity_id,
                e.event_timestamp desc, e.lsn desc nulls last, e.kafka_offset desc nulls last, e.id desc
    ) tail
  ),
  latest as (
    select distinct on (l.source, l.table_schema, l.table_name, l.entity_id)
           l.source, l.table_schema, l.table_name, l.entity_id, l.last_event
      from layer l
     where tables is null or (l.table_schema || '.' || l.table_name) = any (tables)
     order by l.source, l.table_schema, l.table_name, l.entity_id, l.rank desc
  ),
  truncation as (
    select l.source, l.table_schema, l.table_name, l.last_event from latest l where (l.last_event).op = 't'
  )
  select l.source, l.table_schema, l.table_name, l.entity_id, l.last_event
    from latest l
   where (l.last_event).op not in ('d', 't')
     and not exists (
       select 1 from truncation tr
        where tr.source = l.source and tr.table_schema = l.table_schema and tr.table_name = l.table_name
          and msr.event_before(l.last_event, tr.last_event))
$$;

-- Rebuilds the inactive snapshot as the state at the new cutoff (bucket-aligned, never moving
-- back, since older events may already be gone) and flips the pointer to it. One transaction.
create function msr.refresh_earliest_snapshot() returns msr.snapshot_pointer
language plpgsql as $$
declare
  current msr.snapshot_pointer;
  cutoff timestamptz;
  target char(1);
  result msr.snapshot_pointer;
begin
  select * into current from msr.snapshot_pointer where id = 1 for update;
  cutoff := greatest(msr.bucket_of(msr.retention_cutoff()), current.cutoff_time);
  target := case current.active when 'a' then 'b' else 'a' end;

  execute format('truncate msr.%I', 'earliest_snapshot_' || target);
  execute format(
    'insert into msr.%I (source, table_schema, table_name, entity_id, last_event)
     select source, table_schema, table_name, entity_id, last_event
       from msr.entity_states_at($1 - interval ''1 microsecond'')',
    'earliest_snapshot_' || target) using cutoff;

  update msr.snapshot_pointer
     set active = target, cutoff_time = cutoff, last_refresh = now()
   where id = 1
  returning * into result;
  return result;
end
$$;
