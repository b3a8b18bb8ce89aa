-- TimescaleDB provides refresh_continuous_aggregate itself; the restore's call finds nothing to do.
create function msr.ensure_public_entry_points() returns void
language sql as $$ select $$;
