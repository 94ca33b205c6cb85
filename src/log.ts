import pino, { type Logger } from 'pino';
import { serializeError } from './log-error.js';
import { redactText } from './redact.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Field paths that may hold secrets or personal data. pino removes them before serialising, whatever
 * the level. Code should not log them at all; this is the second line of defence.
 */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'passwordFile',
  '*.passwordFile',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'pseudonymSecret',
  '*.pseudonymSecret',
  'identity',
  '*.identity',
  'serial',
  '*.serial',
  'serialNumber',
  '*.serialNumber',
  'mac',
  '*.mac',
  'hardwareId',
  '*.hardwareId',
  'name',
  '*.personName',
  'embedding',
  '*.embedding',
  'url',
  '*.url',
  'source',
  '*.source',
  'headers.authorization',
];

export interface LoggerOptions {
  level?: LogLevel;
  pretty?: boolean;
  /** Where JSON lines go; defaults to stdout. Tests pass a stream to inspect what was logged. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const base = {
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // Messages and error texts can quote ffmpeg's stderr or a URL: strip credentials from them too.
    hooks: {
      logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void) {
        try {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? redactText(a) : a)),
          );
        } catch (error) {
          // A field pino cannot serialise (a throwing getter outside `err`) must cost a line, not the process.
          try {
            method.call(this, { err: error, code: 'CAMVEIL_E_INTERNAL' }, 'a log line could not be serialised');
          } catch {
            // Nothing more can be said through this logger.
          }
        }
      },
    },
    // Anything may arrive as `err` (an Error, a string, an object with throwing getters): the serializer never throws.
    serializers: { err: serializeError },
  };
  if (options.pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss' } },
    });
  }
  return pino(base, (options.destination ?? process.stdout) as pino.DestinationStream);
}

/** A logger that drops everything, for unit tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
