-- Closes a race between writers and the refresh: a statement whose rows land in buckets the
-- running refresh will mark materialized, but which commits after the refresh read cdc_event,
-- was neither materialized nor recorded as an invalidation (its trigger ran before the refresh
-- advanced materialized_until). Writers now take a key-share lock on the progress row, which
-- conflicts with the refresh's FOR UPDATE and with nothing else writers take: the refresh waits
-- for writers in flight (and then sees their rows), and writers arriving during a refresh wait
-- for it (and then see the new materialized_until).
create or replace function msr.invalidate_entity_last_states() returns trigger
language plpgsql as $$
declare
  earliest timestamptz;
begin
  perform 1 from msr.entity_last_states_progress for key share;
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
