import type { Logger } from '../../registry/support/logger.js';

/**
 * `npm start` prints for a person: one short line per request, and other events with their
 * fields. The JSON lines with CloudWatch metric metadata are what Lambda writes; locally
 * nobody reads them.
 */
export function readableLogger(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Logger {
  const log =
    (level: string) =>
    (message: string, fields: Record<string, unknown> = {}) => {
      const time = new Date().toISOString().slice(11, 23);
      if (message === 'request') {
        const outcome = fields.outcome ? ` ${String(fields.outcome)}` : '';
        write(`${time} ${fields.method} ${fields.path} ${fields.status}${outcome} ${fields.durationMs}ms`);
        return;
      }
      if (message === 'pull-through') {
        // `pull-through hub stale hub/library/app:v1 (unavailable)`
        const reference = fields.reference === undefined ? '' : `${/^sha(256|512):/.test(String(fields.reference)) ? '@' : ':'}${fields.reference}`;
        const why = fields.errorKind ? ` (${fields.errorKind})` : '';
        write(`${time} pull-through ${fields.upstream} ${fields.event} ${fields.repository}${reference}${why}`);
        return;
      }
      const shown = Object.fromEntries(Object.entries(fields).filter(([name]) => name !== '_aws' && !/^[A-Z]/.test(name)));
      write(`${time} ${level} ${message}${Object.keys(shown).length > 0 ? ` ${JSON.stringify(shown)}` : ''}`);
    };
  return { info: log('info'), warn: log('warn'), error: log('error') };
}
