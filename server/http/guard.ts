import { ErrorCode } from '@msr/protocol/codes';
import { AuthError, tokenOf, type Authenticator } from '../auth/authenticator.js';
import { json, type Route } from './route.js';

/**
 * Puts authentication in front of every route that is not public: a missing or rejected token
 * gets 401 with its code (503 when the identity service is unreachable), a non-administrator on
 * an admin route 403 FORBIDDEN; the handler sees the principal.
 */
export function guard(routes: readonly Route[], authenticator: Authenticator): Route[] {
  return routes.map((route) => {
    if (route.access === 'public') return route;
    return {
      ...route,
      handler: async (request) => {
        let principal;
        try {
          principal = await authenticator.authenticate(tokenOf(request.headers, request.query));
        } catch (err) {
          if (!(err instanceof AuthError)) throw err;
          return {
            status: err.status,
            body: { code: err.code, message: err.message },
            headers: err.status === 401 ? { 'www-authenticate': 'Bearer' } : {},
          };
        }
        if (route.access === 'admin' && !principal.admin) {
          return json(403, { code: ErrorCode.FORBIDDEN, message: 'this needs the administrator role' });
        }
        return route.handler({ ...request, principal });
      },
    };
  });
}
