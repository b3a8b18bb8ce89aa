import { ErrorCode } from '@msr/protocol/codes';
import { SessionRequest } from '@msr/protocol/messages';
import { usToMs } from '../replay/micros.js';
import { ReplayError } from '../replay/errors.js';
import type { ReplaySession } from '../replay/session.js';
import type { SessionManager } from '../replay/session-manager.js';
import { mayUse } from '../replay/access.js';
import { ANONYMOUS } from '../principal.js';
import { json, parseJsonBody, type HttpResponse, type Route } from './route.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_MESSAGE: 400,
  BAD_RANGE: 400,
  OUT_OF_RANGE: 400,
  SESSION_LIMIT: 429,
  USER_SESSION_LIMIT: 429,
  SESSION_NOT_FOUND: 404,
  FORBIDDEN: 403,
  UNAUTHORIZED: 401,
};

const describe = (session: ReplaySession) => {
  const { position, speed, playing, epoch } = session.state;
  return {
    session: session.id,
    owner: session.spec.owner,
    sharedWith: session.spec.sharedWith,
    from: usToMs(session.spec.from),
    to: usToMs(session.spec.to),
    tables: session.spec.filter.tables ?? null,
    entities: session.spec.filter.entities ?? null,
    position: usToMs(position),
    speed,
    playing,
    epoch,
    sockets: session.sinks.size,
  };
};

async function answer(work: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ReplayError)
      return json(STATUS[err.code] ?? 400, { code: err.code, message: err.message });
    throw err;
  }
}

/**
 * POST /api/v1/sessions creates a session that a socket then `attach`es to (it expires when
 * nobody attaches); GET lists this server's sessions or shows one; DELETE closes one.
 */
const forbidden = (): HttpResponse =>
  json(403, { code: ErrorCode.FORBIDDEN, message: 'this session belongs to another user' });

export function sessionRoutes(manager: SessionManager): Route[] {
  return [
    {
      method: 'post',
      path: '/api/v1/sessions',
      handler: ({ body, principal = ANONYMOUS }) =>
        answer(async () => {
          const parsed = parseJsonBody(body, SessionRequest);
          if ('error' in parsed) return parsed.error;
          const session = await manager.open(parsed.data, principal.subject, principal.admin);
          return json(201, describe(session));
        }),
    },
    {
      method: 'get',
      path: '/api/v1/sessions',
      handler: async ({ principal = ANONYMOUS }) =>
        json(200, {
          sessions: manager
            .list()
            .filter((s) => mayUse(principal, s.spec))
            .map(describe),
          active: await manager.activeCount(),
        }),
    },
    {
      method: 'get',
      path: '/api/v1/sessions/:id',
      handler: ({ params, principal = ANONYMOUS }) => {
        const session = manager.local(params[0]!);
        // Another user's session answers as DELETE and attach do: FORBIDDEN, not "not found".
        if (session && !mayUse(principal, session.spec)) return forbidden();
        return session
          ? json(200, describe(session))
          : json(404, {
              code: ErrorCode.SESSION_NOT_FOUND,
              message: `no session ${params[0]} on this server`,
            });
      },
    },
    {
      method: 'delete',
      path: '/api/v1/sessions/:id',
      handler: async ({ params, principal = ANONYMOUS }) => {
        const session = manager.local(params[0]!);
        if (session && !mayUse(principal, session.spec)) return forbidden();
        return (await manager.close(params[0]!))
          ? { status: 204, body: '' }
          : json(404, {
              code: ErrorCode.SESSION_NOT_FOUND,
              message: `no session ${params[0]} on this server`,
            });
      },
    },
  ];
}
