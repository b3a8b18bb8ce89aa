/**
 * Connection failures to Kafka and PostgreSQL in words an operator acts on, for /readyz and the
 * start error: which of TLS or authentication failed, then the library's own detail. Node's TLS
 * errors name the certificate problem by code; kafkajs and node-postgres pass them through.
 */

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

interface ErrorLike {
  readonly name?: string;
  readonly message?: string;
  readonly code?: string;
  readonly cause?: unknown;
  readonly originalError?: unknown;
}

/** The first error in `err`'s chain (causes, kafkajs's originalError) with a code. */
function codes(err: unknown): string[] {
  const found: string[] = [];
  for (let e = err as ErrorLike | undefined, depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string') found.push(e.code);
    e = (e.cause ?? e.originalError) as ErrorLike | undefined;
  }
  return found;
}

/** What kind of failure `err` is, or undefined when it is none of TLS and authentication. */
export function connectionProblem(err: unknown): string | undefined {
  const e = err as ErrorLike;
  const all = codes(err);
  const message = e.message ?? '';
  if (all.some((c) => UNTRUSTED.has(c))) return 'certificate not trusted';
  if (all.includes('ERR_TLS_CERT_ALTNAME_INVALID')) return 'certificate is for another host name';
  if (all.includes('CERT_HAS_EXPIRED') || all.includes('CERT_NOT_YET_VALID'))
    return 'certificate not valid now';
  if (e.name === 'KafkaJSSASLAuthenticationError' || /SASL .*authentication failed/i.test(message)) {
    return 'SASL authentication failed';
  }
  if (all.includes('28P01') || all.includes('28000')) return 'authentication failed';
  if (/does not support SSL/i.test(message)) return 'the server does not accept TLS';
  if (
    all.includes('EPROTO') ||
    all.includes('ERR_SSL_WRONG_VERSION_NUMBER') ||
    /secure TLS connection|wrong version number/i.test(message)
  ) {
    return 'TLS handshake failed: is the port a TLS listener?';
  }
  return undefined;
}

/** `err`'s message, led by its kind when it is a TLS or authentication failure. */
export function describeConnectionFailure(err: unknown): string {
  const message = (err as ErrorLike).message ?? String(err);
  const problem = connectionProblem(err);
  return problem && !message.startsWith(problem) ? `${problem} (${message})` : message;
}
