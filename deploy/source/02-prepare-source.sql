-- Prepares a source PostgreSQL for MSR's capture with Debezium's PostgreSQL connector (pgoutput).
-- Run as a superuser on the source database. The server needs wal_level=logical (a restart after
-- setting it) and free max_replication_slots / max_wal_senders.

-- Full before images: replay in reverse applies `before`, and an update that leaves a TOASTed
-- column alone still carries its value.
alter table gis.bookmark replica identity full;
alter table gis.geo_entity replica identity full;

-- The connector's own login: replication, and read access for snapshots.
create role debezium with login replication password 'debezium';
grant usage on schema gis to debezium;
grant select on all tables in schema gis to debezium;

-- The publication the connector streams (publication.autocreate.mode=disabled: the connector's
-- role need not own the tables). Add a table here and to table.include.list to capture it.
create publication msr_gis for table gis.bookmark, gis.geo_entity;

-- Debezium's source signal channel (incremental snapshots write their watermarks here); MSR's
-- POST /api/v1/snapshots uses the Kafka channel.
create table gis.debezium_signal (id varchar(42) primary key, type varchar(32) not null, data varchar(2048));
grant select, insert, update, delete on gis.debezium_signal to debezium;
alter publication msr_gis add table gis.debezium_signal;
