/** Who is asking. Without authentication everyone is an anonymous administrator. */
export interface Principal {
  /** The token's subject; null when authentication is off (sessions then belong to nobody). */
  readonly subject: string | null;
  readonly admin: boolean;
  /** When the token stops being accepted (its exp plus the clock tolerance, epoch ms); none without one. */
  readonly expiresAt?: number;
}

export const ANONYMOUS: Principal = Object.freeze({ subject: null, admin: true });
