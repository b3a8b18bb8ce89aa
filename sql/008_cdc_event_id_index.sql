-- Live-follow looks for rows written since it last looked, whatever their event time, by id.
create index cdc_event_id on msr.cdc_event (id);
