/** A refusal the receiver answers with `status` and `{"error":{"code","message"}}`; the message is shown to the client. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
