-- The example source database of compose.yml: two tables an operations centre might capture.
-- Your own database needs only 02-prepare-source.sql, adapted to your tables.
create schema gis;

create table gis.bookmark (
  id serial primary key,
  name text not null,
  lon double precision,
  lat double precision,
  price numeric(10, 2),
  created_at timestamptz not null default now(),
  tags text[]
);

create table gis.geo_entity (
  tenant int not null,
  code text not null,
  label text,
  properties jsonb,
  primary key (tenant, code)
);

insert into gis.bookmark (name, lon, lat, price, tags)
values ('depot', 13.40, 52.52, 10.50, array['base']), ('hospital', 13.37, 52.53, null, array['care', 'poi']);
insert into gis.geo_entity values (1, 'unit-1', 'Unit 1', '{"status": "idle"}');
