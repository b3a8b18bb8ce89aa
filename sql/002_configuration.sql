-- Settings the SQL side needs (retention, snapshot cutoff, session cap). The server writes its
-- effective values here at start; operators' runbooks read them here.

create table msr.configuration (
  key text primary key,
  value text not null,
  description text not null default '',
  updated_at timestamptz not null default now()
);

insert into msr.configuration (key, value, description) values
  ('MAX_PLAYBACK_RANGE', '7', 'Days of history kept and replayable.'),
  ('DATA_RETENTION_CRON_EXPRESSION', '0 3 * * *', 'When retention and snapshot rotation run (cron).'),
  ('MAX_ACTIVE_SESSIONS', '5', 'Active replay sessions allowed across all server instances.'),
  ('EARLIEST_VALID_TIMESTAMP', '', 'No replay before this time (ISO 8601); empty means no limit.');

create function msr.config_value(setting text) returns text
language sql stable as $$
  select nullif(value, '') from msr.configuration where key = setting
$$;

-- The oldest time that may be replayed now: MAX_PLAYBACK_RANGE days back, never before
-- EARLIEST_VALID_TIMESTAMP.
create function msr.retention_cutoff() returns timestamptz
language sql stable as $$
  select greatest(
    now() - make_interval(days => coalesce(msr.config_value('MAX_PLAYBACK_RANGE')::int, 7)),
    coalesce(msr.config_value('EARLIEST_VALID_TIMESTAMP')::timestamptz, '-infinity'::timestamptz)
  )
$$;
