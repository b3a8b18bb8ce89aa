import type { ErrorCode } from '@msr/protocol/codes';

/** A refusal with a code from the protocol catalogue, answered to the client as is. */
export class ReplayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ReplayError';
  }
}
