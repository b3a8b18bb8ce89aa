-- TimescaleDB: the keyframe's aggregate layer reads a linked copy of the continuous aggregate.
-- "Each entity's last materialized row before hi" was a SkipScan over the aggregate, one index
-- descent per entity (about 5.5 µs: 56-63 ms for the 10,000-vehicle city), while plain PostgreSQL
-- answers it with one GiST range lookup over rows that know their entity's next bucket (011: about
-- 25 ms). A continuous aggregate cannot hold the next bucket (no window functions), so
-- entity_state_links holds each materialized row with it, and the layer becomes the same GiST
-- lookup as on plain PostgreSQL: state at T on this city went from 1.3x plain PostgreSQL's to par.
--
-- The aggregate stays the one source of truth, refreshed by TimescaleDB (MSR's refresh, the policy
-- or an operator's CALL). Statement triggers on its materialization hypertable mark the span a
-- refresh rewrote below the linked end as stale; msr.link_entity_states() relinks the stale span
-- and whatever was materialized past the linked end, in bulk. Relinking in the triggers themselves
-- would do each refresh's work twice (it deletes its range, then inserts it) row set by row set:
-- measured 11.5 s for an 80,000-row rewrite that a bulk relink does in 2 s. Until the relink,
-- keyframes trust the links only below the stale span (msr.entity_states_watermark) and read raw
-- events past it: exact, and as slow as a late refresh, never wrong. MSR's own refresh
-- (msr.refresh_entity_states) refreshes and then relinks, and a job relinks after the policy.
--
-- Cost: a second copy of the materialized rows (the aggregate's group indexes other than its time
-- index, which nothing reads any more, are dropped below: about a quarter of that back) and about
-- 25 µs per rewritten row at refresh; nothing on the cdc_event write path.

create table msr.entity_state_links (
  bucket timestamptz not null,
  next_bucket timestamptz,
  entity_key uuid not null,
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  last_event msr.event_state not null
);
-- Chunks as wide as the aggregate's, so retention drops both alike.
select create_hypertable('msr.entity_state_links', by_range('bucket', interval '10 days'),
                         create_default_indexes => false);
create unique index entity_state_links_key_bucket on msr.entity_state_links (entity_key, bucket desc);
create index entity_state_links_validity
  on msr.entity_state_links using gist (tstzrange(bucket, next_bucket, '[)'));

-- The links equal the aggregate's rows before least(linked_until, stale_from); [stale_from,
-- stale_until) was rewritten by a refresh since the last relink.
create table msr.entity_state_links_progress (
  id int primary key default 1 check (id = 1),
  linked_until timestamptz not null default '-infinity',
  stale_from timestamptz,
  stale_until timestamptz
);
insert into msr.entity_state_links_progress default values;

create function msr.mark_entity_state_links_stale() returns trigger
language plpgsql as $$
declare
  lo timestamptz;
  hi timestamptz;
begin
  if tg_op = 'INSERT' then
    select min(bucket), max(bucket) into lo, hi from new_rows;
  elsif tg_op = 'DELETE' then
    select min(bucket), max(bucket) into lo, hi from old_rows;
  else
    select min(bucket), max(bucket) into lo, hi
      from (select bucket from old_rows union all select bucket from new_rows) b;
  end if;
  -- Rows at or past linked_until leave the links exact where they are trusted: relinking the
  -- span past linked_until also relinks each entity's row before it.
  update msr.entity_state_links_progress
     set stale_from = least(stale_from, lo), stale_until = greatest(stale_until, hi + interval '1 microsecond')
   where lo < linked_until;
  return null;
end
$$;

-- An empty or never refreshed aggregate's watermark is TimescaleDB's lowest time, PostgreSQL's
-- lowest timestamp; the instant before it (where the links are looked up) does not exist, so it
-- counts as -infinity here.
create function msr.lowest_as_infinity(t timestamptz) returns timestamptz
language sql immutable as $$
  select case when t <= '4714-11-24 00:00:00+00 BC'::timestamptz then '-infinity'::timestamptz else t end
$$;

-- Rewrites the links of buckets [lo, hi) from the aggregate: each row links to its entity's next
-- row in the span or, for its last, the first link kept at or after hi; each entity's row before lo
-- is relinked to whatever now follows it (as 011 does on plain PostgreSQL).
create procedure msr.relink_entity_states(lo timestamptz, hi timestamptz)
language plpgsql as $$
begin
  delete from msr.entity_state_links where bucket >= lo and bucket < hi;
  insert into msr.entity_state_links
    (bucket, next_bucket, entity_key, source, table_schema, table_name, entity_id, last_event)
  select a.bucket,
         coalesce(lead(a.bucket) over (partition by a.entity_key order by a.bucket),
                  (select min(k.bucket) from msr.entity_state_links k
                    where k.entity_key = a.entity_key and k.bucket >= hi)),
         a.entity_key, a.source, a.table_schema, a.table_name, a.entity_id, a.last_event
    from msr.entity_last_states a
   where a.bucket >= lo and a.bucket < hi;
  if lo > '-infinity' then
    update msr.entity_state_links s
       set next_bucket = (select min(k.bucket) from msr.entity_state_links k
                           where k.entity_key = s.entity_key and k.bucket >= lo)
     where tstzrange(s.bucket, s.next_bucket, '[)') @> (lo - interval '1 microsecond') and s.bucket < lo;
  end if;
end
$$;

-- Brings the links level with the aggregate: the stale span, then everything materialized past
-- the linked end. Serialized by the progress row.
create procedure msr.link_entity_states()
language plpgsql as $$
declare
  progress msr.entity_state_links_progress;
  materialized timestamptz;
  lo timestamptz;
begin
  select * into progress from msr.entity_state_links_progress for update;
  select _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(c.mat_hypertable_id))
    into materialized
    from _timescaledb_catalog.continuous_agg c
   where c.user_view_schema = 'msr' and c.user_view_name = 'entity_last_states';
  materialized := greatest(msr.lowest_as_infinity(materialized), progress.linked_until);
  lo := progress.linked_until;
  if progress.stale_from is not null then
    if progress.stale_until < progress.linked_until then
      call msr.relink_entity_states(progress.stale_from, progress.stale_until);
    else
      lo := least(lo, progress.stale_from);
    end if;
  end if;
  if lo < materialized then
    call msr.relink_entity_states(lo, materialized);
  end if;
  update msr.entity_state_links_progress
     set linked_until = materialized, stale_from = null, stale_until = null;
end
$$;

-- MSR's refresh on TimescaleDB: the aggregate, then its links. Like TimescaleDB's own procedure,
-- it cannot run inside a transaction block.
create procedure msr.refresh_entity_states(window_end timestamptz default null)
language plpgsql as $$
begin
  call refresh_continuous_aggregate('msr.entity_last_states', null, window_end);
  call msr.link_entity_states();
end
$$;

-- With no MSR refreshing (AGGREGATE_REFRESH_SECONDS=0, or no server running), TimescaleDB's
-- refresh policy still refreshes the aggregate every 5 minutes; this job relinks after it.
create procedure msr.link_entity_states_job(job_id int, config jsonb)
language plpgsql as $$
begin
  call msr.link_entity_states();
end
$$;
select add_job('msr.link_entity_states_job', interval '5 minutes');

do $do$
declare
  materialized regclass;
  unread record;
begin
  select format('%I.%I', h.schema_name, h.table_name)::regclass into materialized
    from _timescaledb_catalog.continuous_agg c
    join _timescaledb_catalog.hypertable h on h.id = c.mat_hypertable_id
   where c.user_view_schema = 'msr' and c.user_view_name = 'entity_last_states';
  execute format($t$create trigger entity_state_links_stale_on_insert after insert on %s
    referencing new table as new_rows for each statement execute function msr.mark_entity_state_links_stale()$t$,
    materialized);
  execute format($t$create trigger entity_state_links_stale_on_update after update on %s
    referencing old table as old_rows new table as new_rows
    for each statement execute function msr.mark_entity_state_links_stale()$t$, materialized);
  execute format($t$create trigger entity_state_links_stale_on_delete after delete on %s
    referencing old table as old_rows for each statement execute function msr.mark_entity_state_links_stale()$t$,
    materialized);
  -- The aggregate's indexes other than the one on its time column served the SkipScan and
  -- TimescaleDB's default per-column lookups; nothing reads them now, and every refresh wrote them.
  for unread in
    select i.indexrelid::regclass as name
      from pg_index i
     where i.indrelid = materialized
       and not (i.indnatts = 1 and i.indkey[0] = (select attnum from pg_attribute
                                                  where attrelid = materialized and attname = 'bucket'))
  loop
    execute format('drop index %s', unread.name);
  end loop;
end
$do$;

call msr.link_entity_states();

-- Buckets before this time are materialized and linked: the aggregate's watermark (021's function,
-- renamed), lowered to the links' own. keyframe_bounds calls the new one by name.
alter function msr.entity_states_watermark() rename to aggregate_watermark;

create function msr.entity_states_watermark() returns timestamptz
language sql stable as $$
  select msr.lowest_as_infinity(least(
    msr.aggregate_watermark(),
    (select least(p.linked_until, p.stale_from) from msr.entity_state_links_progress p)))
$$;

-- As on plain PostgreSQL (011): the row whose [bucket, next_bucket) holds the instant before hi.
-- "bucket < hi" is implied; it lets the planner skip the links' later chunks.
create or replace function msr.entity_last_states_between(lo timestamptz, hi timestamptz)
returns table (source text, table_schema text, table_name text, entity_id text, last_event msr.event_state)
language sql stable as $$
  select s.source, s.table_schema, s.table_name, s.entity_id, s.last_event
    from msr.entity_state_links s
   where tstzrange(s.bucket, s.next_bucket, '[)') @> (hi - interval '1 microsecond')
     and s.bucket >= lo and s.bucket < hi
$$;

-- Retention as in 014 (its function renamed), and the links' chunks with the aggregate's.
alter function msr.drop_events_before(timestamptz) rename to drop_events_and_aggregate_before;

create function msr.drop_events_before(cutoff timestamptz) returns int
language plpgsql as $$
declare
  dropped int := msr.drop_events_and_aggregate_before(cutoff);
begin
  perform drop_chunks('msr.entity_state_links', older_than => msr.bucket_of(cutoff));
  return dropped;
end
$$;
