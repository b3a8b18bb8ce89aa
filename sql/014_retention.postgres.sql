-- Retention on plain PostgreSQL: whole day partitions entirely before the cutoff are dropped (no
-- row-by-row delete, no bloat); rows the default partition holds before it are deleted. Partition
-- drops fire no triggers, so the aggregate is not invalidated by them. Materialized buckets before
-- the cutoff are never read again (the snapshot covers them) and go too. Returns the number of
-- partitions dropped.
create function msr.drop_events_before(cutoff timestamptz) returns int
language plpgsql as $$
declare
  part record;
  dropped int := 0;
begin
  for part in
    select c.relname
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_namespace n on n.oid = c.relnamespace
     where i.inhparent = 'msr.cdc_event'::regclass and n.nspname = 'msr'
       and c.relname ~ '^cdc_event_p\d{8}$'
       and (to_date(substring(c.relname from 12), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC' <= cutoff
  loop
    execute format('alter table msr.cdc_event detach partition msr.%I', part.relname);
    execute format('drop table msr.%I', part.relname);
    dropped := dropped + 1;
  end loop;
  delete from msr.cdc_event_default where event_timestamp < cutoff;
  delete from msr.entity_last_states where bucket < msr.bucket_of(cutoff);
  return dropped;
end
$$;
