-- Demo vehicles: $6 units (2,000 in the demo) moving on smooth loops around the city centre and
-- cycling through statuses. Vehicle v reports every $7 .. $7 + $8 - 1 s (its own period; 40..130 s
-- in the demo), so report k has a fixed time and
-- state; this selects the reports whose time falls in ($1, $2] as cdc_event rows (the seed inserts
-- them, the live demo applies them to its source tables). $3 is the demo epoch, where report
-- 0 is a snapshot read ('r'). Every 250th vehicle is deleted for 20 reports, then re-created.
-- Only vehicles with v % $5 = $4 are written, so the seed can run in parallel shards.
with vehicle as (
  select v,
         $7::int + (v * 7919) % $8::int as period_s,
         ((v * 104729::bigint) % 1000) / 1000.0::float8 as r1,
         ((v * 1299709::bigint) % 1000) / 1000.0::float8 as r2,
         (v * 31) % 1000 as offset_ms,
         v % 250 = 0 as churns,
         100 + v % 50 as delete_at,
         (array['ambulance', 'fire_engine', 'police_car', 'tow_truck', 'maintenance_van'])[1 + v % 5] as kind
    from generate_series(1, $6::int) as v
   where v % $5::int = $4::int
),
report as (
  select vh.*, k, $3::timestamptz + make_interval(secs => k * vh.period_s + vh.offset_ms / 1000.0) as at
    from vehicle vh,
         generate_series(
           greatest(0, floor(extract(epoch from $1::timestamptz - $3::timestamptz) / vh.period_s)::int - 1),
           floor(extract(epoch from $2::timestamptz - $3::timestamptz) / vh.period_s)::int
         ) as k
),
shaped as (
  select r.*,
         case
           when r.k = 0 then 'r'
           when r.churns and r.k = r.delete_at then 'd'
           when r.churns and r.k = r.delete_at + 20 then 'c'
           else 'u'
         end as op
    from report r
   where r.at > $1::timestamptz and r.at <= $2::timestamptz
     and not (r.churns and r.k > r.delete_at and r.k < r.delete_at + 20)
)
select s.at as event_timestamp, 'demo' as source, 'city' as table_schema, 'vehicle' as table_name,
       s.v::text as entity_id, s.op,
       case when s.op in ('u', 'd')
            then msr_demo.vehicle_doc(s.v, s.k - 1, s.kind, s.r1, s.r2, s.at - make_interval(secs => s.period_s)) end as before,
       case when s.op <> 'd'
            then msr_demo.vehicle_doc(s.v, s.k, s.kind, s.r1, s.r2, s.at) end as after
  from shaped s
 order by s.at
