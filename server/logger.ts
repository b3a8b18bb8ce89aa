import { pino, type Logger } from 'pino';

/**
 * The process's JSON log. On stdout for the server; the command-line tools print their result on
 * stdout, so theirs goes to stderr (`toStderr`) and a warning never mixes into what they answer.
 */
export function createLogger(level: string, options: { toStderr?: boolean } = {}): Logger {
  return options.toStderr
    ? pino({ level, base: { service: 'msr' } }, pino.destination({ dest: 2, sync: true }))
    : pino({ level, base: { service: 'msr' } });
}
export type { Logger };
