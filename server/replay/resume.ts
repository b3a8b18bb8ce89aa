import { z } from 'zod';
import { RESUME_PREFIX } from '@msr/protocol/codes';
import { Speed } from '@msr/protocol/messages';

/**
 * The resume token a server puts in the reason of its going-away close (1001) as
 * `resume:<token>`: where the session stood when the server left. `attach` passes it back, and
 * the server that adopts the session starts there even if the old server's last write of the
 * position did not reach the database. It grants nothing: ownership is checked as for any attach.
 */
export const ResumeState = z.strictObject({
  /** Position, epoch ms. */
  t: z.number().finite(),
  speed: Speed,
  playing: z.boolean(),
});
export type ResumeState = z.infer<typeof ResumeState>;

export function encodeResumeToken(state: ResumeState): string {
  return Buffer.from(JSON.stringify(state)).toString('base64url');
}

/** The state in a token, or undefined when it is not one (never throws). */
/** The close reason that carries a token. */
export function resumeReason(state: ResumeState): string {
  return `${RESUME_PREFIX}${encodeResumeToken(state)}`;
}

export function decodeResumeToken(token: string): ResumeState | undefined {
  try {
    const parsed = ResumeState.safeParse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
