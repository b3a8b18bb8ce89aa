-- Retention on TimescaleDB: whole chunks of cdc_event entirely before the cutoff are dropped, and
-- the continuous aggregate's chunks before it (the snapshot covers those buckets). Returns the
-- number of raw chunks dropped.
create function msr.drop_events_before(cutoff timestamptz) returns int
language plpgsql as $$
declare
  dropped int;
begin
  select count(*) into dropped from drop_chunks('msr.cdc_event', older_than => cutoff);
  perform drop_chunks('msr.entity_last_states', older_than => msr.bucket_of(cutoff));
  return dropped;
end
$$;
