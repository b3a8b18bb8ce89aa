-- Demo content, not part of the msr schema: the deterministic motion and lifecycle models that
-- the seed and the live generator share. Recreated at every start with DEMO on.
create schema if not exists msr_demo;

-- Stable, not immutable: a timestamptz rendered into JSON depends on TimeZone. It also lets the
-- planner inline the function where its arguments are stable expressions, which the seed's
-- speed depends on.
create or replace function msr_demo.vehicle_doc(v int, step int, kind text, r1 float8, r2 float8, at timestamptz)
returns jsonb language sql stable parallel safe as $$
  select jsonb_build_object(
    'id', v,
    'callsign', kind || '-' || v,
    'kind', kind,
    'status', (array['available', 'dispatched', 'en_route', 'on_scene', 'returning'])[1 + ((step / (8 + v % 13)) + v) % 5],
    'lat', round((60.17 + 0.06 * r1 * sin(step * 0.02 * (1 + r2) + v)) * 1e6) / 1e6,
    'lon', round((24.94 + 0.12 * r2 * cos(step * 0.017 * (1 + r1) + v)) * 1e6) / 1e6,
    'speed_kmh', round(20 + 60 * abs(sin(step * 0.1 + v))),
    'updated_at', at)
$$;

create or replace function msr_demo.incident_doc(n int, stage int, epoch timestamptz)
returns jsonb language sql stable parallel safe as $$
  select jsonb_build_object(
    'id', 'INC-' || lpad(n::text, 5, '0'),
    'category', (array['traffic_accident', 'fire', 'medical', 'road_works', 'public_disturbance', 'flooding'])[1 + n % 6],
    'priority', 1 + (n * 7) % 4,
    'status', (array['open', 'dispatched', 'on_scene', 'resolving', 'closed'])[1 + least(stage, 4)],
    'lat', round((60.17 + 0.05 * sin(n * 1.7))::numeric, 6),
    'lon', round((24.94 + 0.10 * cos(n * 2.3))::numeric, 6),
    'units_assigned', least(stage, 3) * (1 + n % 3),
    'opened_at', to_char((epoch + make_interval(secs => n * 240 + (n * 37) % 120)) at time zone 'UTC',
                         'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;
