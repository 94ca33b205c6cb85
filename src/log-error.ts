import { printable, redactText } from './redact.js';

/** What an `err` field becomes in a log line. */
export interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  code?: string | number;
  cause?: SerializedError;
  errors?: SerializedError[];
  [key: string]: unknown;
}

/** How deep a `cause` chain or an AggregateError's `errors` is followed, and how many of its errors are kept. */
const MAX_DEPTH = 5;
const MAX_AGGREGATED = 10;
/** Own fields of an error that are never copied into a log line, whatever their value. */
const SECRET_KEY = /pass|secret|token|identity|authori[sz]ation|cookie|credential|key$|^url$|^source$|^name$/i;
/** Fields handled on their own (or already in the stack). */
const HANDLED = new Set(['message', 'stack', 'cause', 'errors', 'name']);

/**
 * Turns anything thrown or passed as `err` into a plain, JSON-safe object: an Error (with its code, its
 * `cause` chain and an AggregateError's errors), a string, an object, undefined. Credentials in messages,
 * stacks and copied fields are masked (redact.ts). It never throws: a throwing getter, a cyclic cause or a
 * hostile `toString` gives a placeholder instead, because a logger that throws turns a logged failure into
 * a crash of the hub.
 */
export function serializeError(value: unknown): SerializedError {
  try {
    return serialize(value, 0, new Set());
  } catch {
    return { type: 'unserializable', message: '[the error could not be serialized]' };
  }
}

function serialize(value: unknown, depth: number, seen: Set<unknown>): SerializedError {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
    return { type: value === null ? 'null' : typeof value, message: redactText(printable(value)) };
  }
  if (seen.has(value)) return { type: 'circular', message: '[circular]' };
  seen.add(value);
  const out: SerializedError = { type: typeName(value), message: redactText(printable(read(value, 'message') ?? '')) };
  const stack = read(value, 'stack');
  if (typeof stack === 'string') out.stack = redactText(stack);
  if (!(value instanceof Error) && read(value, 'message') === undefined) {
    // Not an error at all (someone threw or logged a plain object): its printed form is the message.
    out.message = redactText(printable(value));
  }
  for (const key of ownKeys(value)) {
    if (HANDLED.has(key) || SECRET_KEY.test(key)) continue;
    const field = read(value, key);
    if (typeof field === 'string') out[key] = redactText(field);
    else if (typeof field === 'number' || typeof field === 'boolean') out[key] = field;
  }
  if (depth < MAX_DEPTH) {
    const cause = read(value, 'cause');
    if (cause !== undefined) out.cause = serialize(cause, depth + 1, seen);
    const errors = read(value, 'errors');
    if (Array.isArray(errors)) {
      out.errors = errors.slice(0, MAX_AGGREGATED).map((e) => serialize(e, depth + 1, seen));
      if (errors.length > MAX_AGGREGATED) out.errorsOmitted = errors.length - MAX_AGGREGATED;
    }
  }
  return out;
}

/** A property, or undefined when reading it throws (getters, proxies). */
function read(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function ownKeys(value: object): string[] {
  try {
    return Object.keys(value).slice(0, 32);
  } catch {
    return [];
  }
}

function typeName(value: object): string {
  const name = read(value, 'name');
  if (typeof name === 'string' && name !== '') return name;
  try {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof ctor === 'string' && ctor !== '' ? ctor : 'Object';
  } catch {
    return 'Object';
  }
}
