-- MSR's refresh, one name on both dialects: on TimescaleDB it refreshes the continuous aggregate
-- and then relinks its copy (022_entity_state_links.timescaledb.sql); here the table refreshes
-- and links itself.
create procedure msr.refresh_entity_states(window_end timestamptz default null)
language plpgsql as $$
begin
  call msr.refresh_entity_last_states(null, window_end);
end
$$;
