// Times as the viewer shows and reads them: UTC, to the millisecond.

const DAY_MS = 86_400_000;

export const timeText = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 23);

/**
 * A time the user typed: `HH:MM[:SS[.mmm]]` (UTC), taken on whichever day puts it nearest to
 * `near` (so 23:57 typed at 00:05 is eight minutes back, not a day ahead), or any date
 * Date.parse reads. NaN when it is neither.
 */
export function parseTime(text: string, near: number): number {
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?$/.exec(text.trim());
  if (!clock) return Date.parse(text.trim());
  const [, h, m, s = '0', fraction = ''] = clock;
  if (Number(h) > 23 || Number(m) > 59 || Number(s) > 59) return NaN;
  const ofDay =
    ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000 + Math.round(Number(`0${fraction}`) * 1000);
  const midnight = Math.floor(near / DAY_MS) * DAY_MS;
  const candidates = [midnight - DAY_MS, midnight, midnight + DAY_MS].map((day) => day + ofDay);
  return candidates.reduce((best, t) => (Math.abs(t - near) < Math.abs(best - near) ? t : best));
}
