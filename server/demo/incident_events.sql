-- Demo incidents: one opens about every 4 minutes ('c'), moves through dispatched, on scene and
-- resolving to closed ('u', 5 to 9 minutes apart); every 6th closed incident is deleted an hour
-- later. Selects the events whose time falls in ($1, $2] as cdc_event rows; $3 is the demo epoch.
with incident as (
  select n,
         $3::timestamptz + make_interval(secs => n * 240 + (n * 37) % 120) as opened,
         300 + (n % 5) * 60 as step_s
    from generate_series(
           greatest(0, floor(extract(epoch from $1::timestamptz - $3::timestamptz) / 240)::int - 30),
           floor(extract(epoch from $2::timestamptz - $3::timestamptz) / 240)::int
         ) as n
),
lifecycle as (
  select i.n, stage,
         case when stage = 5 then i.opened + make_interval(secs => 4 * i.step_s + 3600)
              else i.opened + make_interval(secs => stage * i.step_s) end as at,
         case when stage = 0 then 'c' when stage = 5 then 'd' else 'u' end as op
    from incident i, generate_series(0, 5) as stage
   where stage < 5 or i.n % 6 = 0
)
select l.at as event_timestamp, 'demo' as source, 'city' as table_schema, 'incident' as table_name,
       'INC-' || lpad(l.n::text, 5, '0') as entity_id, l.op,
       case when l.op <> 'c' then msr_demo.incident_doc(l.n, least(l.stage - 1, 4), $3::timestamptz) end as before,
       case when l.op <> 'd' then msr_demo.incident_doc(l.n, l.stage, $3::timestamptz) end as after
  from lifecycle l
 where l.at > $1::timestamptz and l.at <= $2::timestamptz
 order by l.at
