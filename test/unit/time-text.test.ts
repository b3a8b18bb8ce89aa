import { describe, expect, it } from 'vitest';
import { parseTime, timeText } from '../../web/time-text.js';

// The player's typed times: a time of day is taken on the day that puts it nearest to the replay
// time, so typing across midnight goes the short way. Days here are counted from the epoch, not
// taken from the calendar.

const DAY = 86_400_000;
const at = (day: number, h: number, m: number, s = 0) => day * DAY + ((h * 60 + m) * 60 + s) * 1000;

describe('parseTime', () => {
  it('takes a time of day on the nearest day: back across midnight, ahead across midnight, or the same day', () => {
    expect(parseTime('23:57', at(20_000, 0, 5))).toBe(at(19_999, 23, 57));
    expect(parseTime('00:02:30', at(20_000, 23, 58))).toBe(at(20_001, 0, 2, 30));
    expect(parseTime('12:00:01.250', at(20_000, 11, 0))).toBe(at(20_000, 12, 0, 1) + 250);
  });

  it('reads full dates as Date.parse does, and says NaN to anything else', () => {
    const t = at(20_000, 8, 30);
    expect(parseTime(new Date(t).toISOString(), 0)).toBe(t);
    expect(parseTime('half past eight', t)).toBeNaN();
    expect(parseTime('25:61', t)).toBeNaN();
  });

  it('round-trips what the player shows', () => {
    const t = at(20_000, 8, 30, 15) + 123;
    expect(parseTime(timeText(t).slice(11), t)).toBe(t);
  });
});
