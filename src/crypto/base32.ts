import { base32nopad } from '@scure/base';

/**
 * RFC 4648 base32, lower case, without padding. Used for identifiers people may read aloud or type
 * (object ids, pseudonyms): no 0/1/8/9, case-insensitive, safe in file names and MQTT topics.
 */
export function base32(bytes: Uint8Array): string {
  return base32nopad.encode(bytes).toLowerCase();
}
