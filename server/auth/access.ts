import type { SessionSpec } from '../replay/session.js';
import type { Principal } from './authenticator.js';

/** Whether a principal may attach to, control, see or close a session. */
export function mayUse(principal: Principal, spec: Pick<SessionSpec, 'owner' | 'sharedWith'>): boolean {
  return (
    principal.admin ||
    spec.owner === null ||
    spec.owner === principal.subject ||
    (principal.subject !== null && spec.sharedWith.includes(principal.subject))
  );
}
