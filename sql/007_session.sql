-- Replay sessions, shared by every server process on this database: the active-session cap is
-- counted here, and a lease that is not renewed (a crashed process) lets the slot go.

create table msr.session (
  id uuid primary key,
  owner text,
  server_id text not null,
  range_from timestamptz not null,
  range_to timestamptz not null,
  filter jsonb not null default '{}',
  position timestamptz not null,
  speed double precision not null default 1,
  playing boolean not null default false,
  created_at timestamptz not null default now(),
  lease_until timestamptz not null,
  closed_at timestamptz
);

create index session_active on msr.session (lease_until) where closed_at is null;
