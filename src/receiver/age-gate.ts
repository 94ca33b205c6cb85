import { headerEnd, MAX_HEADER_SIZE } from '../crypto/age-header.js';
import { ageHeaderProblem, mayBeginAgeHeader } from './age-syntax.js';
import { HttpError } from './http-error.js';

/** What the gate saw of one body: its size so far, and why it refused it (when it did). */
export interface GateState {
  bytes: number;
  refusal?: HttpError;
}

/**
 * Passes an upload's chunks on only once its first bytes are a complete, valid age header, and counts
 * them against `maxBytes`. Nothing is yielded for a body that is not age ciphertext, so no storage backend
 * ever holds a byte of it. Refusals throw HttpError 415 (not age) or 413 (over the limit) and are also
 * kept in `state.refusal`: a backend that wraps the stream (the SDK's Upload) may report them as its own
 * error, and the server answers with the gate's.
 */
export async function* ageGated(source: AsyncIterable<Buffer>, maxBytes: number, state: GateState): AsyncGenerator<Buffer> {
  const refuse = (error: HttpError): HttpError => {
    state.refusal = error;
    return error;
  };
  let head: Buffer | undefined = Buffer.alloc(0);
  for await (const chunk of source) {
    state.bytes += chunk.length;
    if (state.bytes > maxBytes) throw refuse(new HttpError(413, 'payload_too_large', `body is over the limit of ${maxBytes} bytes`));
    if (head === undefined) {
      yield chunk;
      continue;
    }
    const scanFrom = head.length;
    head = Buffer.concat([head, chunk]);
    if (!mayBeginAgeHeader(head)) throw refuse(new HttpError(415, 'not_age', 'body does not begin with an age header (age-encryption.org/v1)'));
    const end = headerEnd(head, scanFrom);
    if (end === -1 ? head.length > MAX_HEADER_SIZE : end > MAX_HEADER_SIZE) {
      throw refuse(new HttpError(415, 'not_age', `age header is longer than ${MAX_HEADER_SIZE} bytes`));
    }
    if (end === -1) continue;
    const problem = ageHeaderProblem(head.subarray(0, end));
    if (problem !== undefined) throw refuse(new HttpError(415, 'not_age', `age header is not valid: ${problem}`));
    const first = head;
    head = undefined;
    yield first;
  }
  if (head !== undefined) throw refuse(new HttpError(415, 'not_age', 'body ends before a complete age header'));
}
