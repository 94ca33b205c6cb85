/**
 * Removes credentials from URLs and strings before they can reach a log line or a state topic.
 * `rtsp://admin:hunter2@cam/x` becomes `rtsp://***@cam/x`; query parameters that carry secrets
 * (Foscam's `usr`/`pwd`, tokens) are masked as well.
 */
const SECRET_QUERY_KEYS = /^(pwd|pass|password|passwd|usr|user|username|token|access_token|auth|key|secret)$/i;

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
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1***@')
    .replace(/\b(pwd|pass|password|passwd|usr|user|token|access_token)=([^&\s"']+)/gi, '$1=***')
    .replace(/AGE-SECRET-KEY-[A-Z0-9-]+/g, 'AGE-SECRET-KEY-***');
}
