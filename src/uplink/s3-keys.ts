/**
 * Where a hub's objects live in a bucket: `<prefix>/<hub pseudonym>/<object id>.age`, or
 * `<hub pseudonym>/<object id>.age` without a prefix. Nothing else goes into a key: no camera, no kind,
 * no time (an object id is random).
 */
export function hubKeyPrefix(prefix: string | undefined, hubPseudonym: string): string {
  return prefix === undefined || prefix === '' ? `${hubPseudonym}/` : `${prefix}/${hubPseudonym}/`;
}

export function objectKey(hubPrefix: string, objectId: string): string {
  return `${hubPrefix}${objectId}.age`;
}

/** The object id a listed key names, or undefined for a key that is not `<hubPrefix><id>.age` (left alone). */
export function objectIdOfKey(hubPrefix: string, key: string): string | undefined {
  if (!key.startsWith(hubPrefix)) return undefined;
  const match = /^([A-Za-z0-9_-]{1,200})\.age$/.exec(key.slice(hubPrefix.length));
  return match?.[1];
}
