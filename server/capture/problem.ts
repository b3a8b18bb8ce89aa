/** Why the capture cannot run, with what to do about it; /readyz shows the message. */
export type CaptureProblemCode =
  | 'SOURCE_UNREACHABLE'
  | 'WAL_LEVEL'
  | 'NO_REPLICATION'
  | 'NO_PUBLICATION'
  | 'SLOT_IN_USE'
  | 'SLOT_LOST'
  | 'PUBLICATION_CHANGED'
  | 'CAPTURE_FAILED';

export class CaptureProblem extends Error {
  constructor(
    readonly code: CaptureProblemCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaptureProblem';
  }
}
