/** A value that JSON can carry without loss. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Nesting deeper than this is refused: audit details are flat, and it bounds recursion. */
const MAX_DEPTH = 32;

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, numbers and strings as
 * `JSON.stringify` writes them (so `-0` becomes `0`). The same value always gives the same string,
 * whatever the key order, which is what the audit hash chain needs.
 *
 * Only JSON types are accepted: plain objects (prototype `Object.prototype` or `null`), arrays without
 * holes, finite numbers, strings, booleans and null.
 *
 * @throws TypeError for `undefined` (also as a property value), NaN, ±Infinity, functions, symbols,
 * bigints, class instances (Date, Buffer, Map…), sparse arrays, cycles and nesting deeper than 32; the
 * message names the path, never the value.
 */
export function canonicalJson(value: unknown): string {
  return write(value, '$', 0);
}

function write(value: unknown, path: string, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: not a finite number`);
      return JSON.stringify(value);
    case 'object':
      break;
    case 'undefined':
    case 'function':
    case 'symbol':
    case 'bigint':
      throw new TypeError(`${path}: ${typeof value} is not a JSON value`);
  }
  if (depth >= MAX_DEPTH) throw new TypeError(`${path}: nested more than ${MAX_DEPTH} levels (or a cycle)`);
  if (Array.isArray(value)) {
    const items: string[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw new TypeError(`${path}[${i}]: hole in a sparse array`);
      items.push(write(value[i], `${path}[${i}]`, depth + 1));
    }
    return `[${items.join(',')}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`${path}: not a plain object`);
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  const members = keys.map((key) => `${JSON.stringify(key)}:${write(record[key], `${path}.${key}`, depth + 1)}`);
  return `{${members.join(',')}}`;
}
