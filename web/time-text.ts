// Times as the viewer shows and reads them: UTC, to the millisecond.

export const timeText = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 23);

/**
 * A time the user typed: `HH:MM[:SS[.mmm]]` (UTC) on the day of `day`, or any date Date.parse
 * reads. NaN when it is neither.
 */
export function parseTime(text: string, day: number): number {
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?$/.exec(text.trim());
  if (!clock) return Date.parse(text.trim());
  const [, h, m, s = '0', fraction = ''] = clock;
  const midnight = Math.floor(day / 86_400_000) * 86_400_000;
  return (
    midnight +
    ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000 +
    Math.round(Number(`0${fraction}`) * 1000)
  );
}
