import type { z } from 'zod';

/** One configuration key as the schema defines it. */
export interface SchemaKey {
  /** Dotted path; `[]` marks an array of objects, `<key>` a record's key (e.g. `uplink.endpoints.<key>.url`). */
  path: string;
  /** The zod type at the key, wrappers removed (`string`, `number`, `boolean`, `enum`, `array`, …). */
  type: string;
  optional: boolean;
  defaultValue: unknown;
}

// zod 4 keeps each schema's definition on `_zod.def`; the public types do not expose the fields the walk
// needs (shape, innerType, in/out, options, keyType), so the walk reads them through this narrow view.
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  defaultValue?: unknown;
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Every leaf key of a zod 4 object schema: objects are walked into, arrays of objects as `path[]`, records as
 * `path.<key>`, unions (discriminated or not) as the union of their options' keys; optional, default, prefault,
 * nullable, readonly and pipe (refine/transform/preprocess) wrappers are looked through. Keys whose schema is
 * `unknown` or `never` exist only to be refused with a helpful message (a plain `password`), so they are left out.
 */
export function schemaKeys(schema: z.ZodType): SchemaKey[] {
  const keys = new Map<string, SchemaKey>();
  const walk = (s: z.ZodType, path: string, optional: boolean, defaultValue: unknown): void => {
    const def = defOf(s);
    switch (def.type) {
      case 'optional':
      case 'nullable':
        walk(def.innerType!, path, true, defaultValue);
        return;
      case 'default':
      case 'prefault':
        walk(def.innerType!, path, true, defaultValue ?? def.defaultValue);
        return;
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        walk(def.innerType!, path, optional, defaultValue);
        return;
      case 'pipe': {
        // refine/transform: the input side is the schema; preprocess: the input side is the transform.
        const side = defOf(def.in!).type === 'transform' ? def.out! : def.in!;
        walk(side, path, optional, defaultValue);
        return;
      }
      case 'object':
        for (const [name, child] of Object.entries(def.shape!)) walk(child, path === '' ? name : `${path}.${name}`, false, undefined);
        return;
      case 'union':
        for (const option of def.options!) walk(option, path, optional, defaultValue);
        return;
      case 'record':
        walk(def.valueType!, `${path}.<key>`, true, undefined);
        return;
      case 'array': {
        const element = def.element!;
        if (isObjectLike(element)) walk(element, `${path}[]`, false, undefined);
        else keys.set(path, { path, type: 'array', optional, defaultValue });
        return;
      }
      case 'unknown':
      case 'never':
        return;
      default:
        if (!keys.has(path)) keys.set(path, { path, type: def.type, optional, defaultValue });
    }
  };
  walk(schema, '', false, undefined);
  return [...keys.values()];
}

function isObjectLike(s: z.ZodType): boolean {
  const def = defOf(s);
  if (def.type === 'object') return true;
  if (def.type === 'union') return def.options!.every(isObjectLike);
  if (def.innerType !== undefined) return isObjectLike(def.innerType);
  if (def.type === 'pipe') return isObjectLike(defOf(def.in!).type === 'transform' ? def.out! : def.in!);
  return false;
}
