-- The operators' entry point CALL refresh_continuous_aggregate('msr.entity_last_states', ...)
-- lives in schema public, which a backup of the msr schema does not carry. A restore calls this
-- to put it back (migration 005 made the same procedure).
create function msr.ensure_public_entry_points() returns void
language plpgsql as $fn$
begin
  create or replace procedure public.refresh_continuous_aggregate(
    continuous_aggregate regclass, window_start timestamptz, window_end timestamptz)
  language plpgsql as $$
  begin
    if continuous_aggregate <> 'msr.entity_last_states'::regclass then
      raise exception '% is not a continuous aggregate', continuous_aggregate;
    end if;
    call msr.refresh_entity_last_states(window_start, window_end);
  end
  $$;
end
$fn$;
