-- The demo city as a source database would hold it: the live demo writes its vehicles and
-- incidents here, and MSR's built-in capture streams the changes into msr.cdc_event like any
-- other source's (source 'demo', schema city). Full row images, for reverse play.
create schema if not exists city;

create table if not exists city.vehicle (
  id int primary key,
  callsign text not null,
  kind text not null,
  status text not null,
  lat float8 not null,
  lon float8 not null,
  speed_kmh int not null,
  updated_at timestamptz not null
);
alter table city.vehicle replica identity full;

create table if not exists city.incident (
  id text primary key,
  category text not null,
  priority int not null,
  status text not null,
  lat numeric not null,
  lon numeric not null,
  units_assigned int not null,
  opened_at text not null
);
alter table city.incident replica identity full;
