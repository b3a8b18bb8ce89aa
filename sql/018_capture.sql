-- The built-in capture's progress per replication slot. The slot itself (on the source) holds the
-- stream position; this row says whether the initial snapshot taken with the slot was stored. A
-- row without snapshot_done_at means a snapshot was under way when the process stopped: the slot
-- is dropped and made again, with a new snapshot (the half-stored one was rolled back with it).
create table msr.capture_state (
  slot_name text primary key,
  source text not null,
  consistent_lsn bigint,
  snapshot_started_at timestamptz not null default now(),
  snapshot_done_at timestamptz,
  snapshot_rows bigint
);
