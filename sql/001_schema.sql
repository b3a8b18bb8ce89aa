-- The msr schema and the pieces every storage layer shares.

create schema if not exists msr;

-- One change as the state layers keep it: its ordering key (event_timestamp, lsn, kafka_offset, id),
-- its op and the after image. The snapshot tables, entity_last_states and the raw tail all speak it,
-- so the keyframe query can stack them.
create type msr.event_state as (
  event_timestamp timestamptz,
  lsn bigint,
  kafka_offset bigint,
  id bigint,
  op char(1),
  after jsonb
);

-- True when a happened before b in replay order: time, then LSN, then Kafka offset, then insertion
-- order; a missing LSN or offset sorts first.
create function msr.event_before(a msr.event_state, b msr.event_state) returns boolean
language sql immutable parallel safe as $$
  select (a.event_timestamp, coalesce(a.lsn, -1), coalesce(a.kafka_offset, -1), a.id)
       < (b.event_timestamp, coalesce(b.lsn, -1), coalesce(b.kafka_offset, -1), b.id)
$$;

-- Bucket width of entity_last_states: 15 minutes, aligned like TimescaleDB's time_bucket.
create function msr.bucket_of(t timestamptz) returns timestamptz
language sql immutable parallel safe as $$
  select date_bin(interval '15 minutes', t, timestamptz '2000-01-03 00:00:00+00')
$$;

create sequence msr.cdc_event_id_seq as bigint;
