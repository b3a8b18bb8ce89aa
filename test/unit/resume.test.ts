import { describe, expect, it } from 'vitest';
import { RESUME_PREFIX } from '@msr/protocol/codes';
import { decodeResumeToken, encodeResumeToken, resumeReason } from '../../server/replay/resume.js';

describe('resume tokens', () => {
  it('carry position, speed and play state, and fit in a WebSocket close reason', () => {
    const state = { t: 1_795_517_682_683.125, speed: '-max' as const, playing: true };
    expect(decodeResumeToken(encodeResumeToken(state))).toEqual(state);
    // A close reason is at most 123 bytes.
    expect(
      Buffer.byteLength(resumeReason({ t: 1_795_517_682_683.125, speed: 999.5, playing: false })),
    ).toBeLessThan(123);
    expect(resumeReason(state).startsWith(RESUME_PREFIX)).toBe(true);
  });

  it('are ignored, not trusted, when they are not ours', () => {
    for (const junk of [
      '',
      'x',
      '!!!',
      encodeResumeToken({ t: 1, speed: 5000, playing: true } as never),
      'eyJ0IjoxfQ',
    ]) {
      expect(decodeResumeToken(junk)).toBeUndefined();
    }
  });
});
