/**
 * A logger whose lines (JSON, as the gateway writes them) are kept in memory: for tests that
 * check what is logged, and that a secret never is.
 */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../edge/log.js';

export function loggerToLines(lines: string[], level = 'debug'): Logger {
  return createLogger({
    level,
    destination: new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  });
}
