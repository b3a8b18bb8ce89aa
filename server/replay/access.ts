import type { Principal } from '../principal.js';
import type { SessionSpec } from './session.js';

/** Session access, a rule of replay: whether a principal may attach to, control, see or close a session. */
export function mayUse(principal: Principal, spec: Pick<SessionSpec, 'owner' | 'sharedWith'>): boolean {
  return (
    principal.admin ||
    spec.owner === null ||
    spec.owner === principal.subject ||
    (principal.subject !== null && spec.sharedWith.includes(principal.subject))
  );
}
