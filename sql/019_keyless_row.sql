-- Rows of tables without a primary key, as entities. With REPLICA IDENTITY FULL every change
-- carries the whole row, so such a table replays as the source's multiset of rows: each live row
-- is an entity with an id of its own (from the change that inserted it), found again by its row
-- image (a digest) when an update or delete names that image. Identical rows are interchangeable,
-- so whichever one a change picks, the multiset replayed is the source's.
create table msr.keyless_row (
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  row_digest text not null,
  primary key (source, table_schema, table_name, entity_id)
);

create index keyless_row_by_digest on msr.keyless_row (source, table_schema, table_name, row_digest, entity_id);
