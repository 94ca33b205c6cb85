/**
 * Removes credentials from URLs and strings before they can reach a log line or a state topic.
 * `rtsp://admin:hunter2@cam/x` becomes `rtsp://***@cam/x`; query parameters that carry secrets
 * (Foscam's `usr`/`pwd`, tokens, and a presigned S3 URL's signature, credential scope and session token)
 * are masked as well.
 */
const SECRET_QUERY_KEYS =
  /^(pwd|pass|password|passwd|usr|user|username|token|access_token|auth|key|secret|x-amz-signature|x-amz-credential|x-amz-security-token|signature|awsaccesskeyid|x-goog-signature|x-goog-credential)$/i;

export function redactUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return redactText(value);
  }
  if (url.username !== '' || url.password !== '') {
    url.username = '***';
    url.password = '';
  }
  for (const key of [...url.searchParams.keys()]) {
    if (SECRET_QUERY_KEYS.test(key)) url.searchParams.set(key, '***');
  }
  return url.toString();
}

/** Masks `scheme://user:pass@` sequences and `pwd=…`-style parameters anywhere in free text (ffmpeg stderr). */
export function redactText(text: string): string {
  // Callers are typed, but a log line may carry whatever was thrown: never let redaction itself throw.
  if (typeof text !== 'string') text = printable(text);
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1***@')
    .replace(/\b(pwd|pass|password|passwd|usr|user|token|access_token)=([^&\s"']+)/gi, '$1=***')
    // Presigned URLs (S3 SigV4 and V2, GCS): the signature, the access key in the credential scope, the session token.
    .replace(/\b(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|X-Goog-Signature|X-Goog-Credential)=([^&\s"'<]+)/gi, '$1=***')
    .replace(/AGE-SECRET-KEY-[A-Z0-9-]+/g, 'AGE-SECRET-KEY-***');
}

/** `String(value)`, or a placeholder when even that throws (a throwing `toString`, a null-prototype object). */
export function printable(value: unknown): string {
  try {
    return String(value);
  } catch {
    return '[unprintable]';
  }
}
