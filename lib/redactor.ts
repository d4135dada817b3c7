/**
 * Hides secrets in text meant for output. A secret reaches output in more forms than the one it
 * was given in: a server echoes an Authorization header as base64, error bodies and our JSON
 * output escape quotes and backslashes (once, or twice when a JSON text sits inside a JSON
 * string), URLs percent-encode, HTML error pages entity-encode, GitHub annotations escape `%`
 * and line breaks, one-line messages collapse whitespace. Every such form of every registered
 * secret is replaced by `***`.
 *
 * Redact whole texts, before anything shortens them: a cut through a secret leaves a prefix
 * that no longer matches.
 */

export const REDACTED = "***";

/** Shorter secrets are not hidden: replacing every "ab" would make output unreadable. */
export const MIN_SECRET_LENGTH = 3;

export class Redactor {
  #forms = new Set<string>();
  /** Longest first, so a secret containing another is hidden whole; rebuilt after `add`. */
  #ordered: string[] | undefined;

  /** Registers a secret; `basicAuth` also registers the base64 it travels in (`user:pass`). */
  add(secret: string, options: { basicAuth?: boolean } = {}): void {
    for (const form of encodings(secret, options.basicAuth ?? false)) {
      if (form.length >= MIN_SECRET_LENGTH && !this.#forms.has(form)) {
        this.#forms.add(form);
        this.#ordered = undefined;
      }
    }
  }

  /** Registers every string (and number) inside a JSON value: a secret block's `value`. */
  addValue(value: unknown): void {
    if (typeof value === "string") this.add(value);
    else if (typeof value === "number" || typeof value === "bigint") this.add(String(value));
    else if (Array.isArray(value)) value.forEach((v) => this.addValue(v));
    else if (value && typeof value === "object") {
      Object.values(value).forEach((v) => this.addValue(v));
    }
  }

  get size(): number {
    return this.#forms.size;
  }

  redact(text: string): string {
    if (this.#forms.size === 0) return text;
    this.#ordered ??= [...this.#forms].sort((a, b) => b.length - a.length);
    let result = text;
    for (const form of this.#ordered) {
      if (result.includes(form)) result = result.split(form).join(REDACTED);
    }
    return result;
  }
}

/** Every form `secret` may take in what deploy.ts prints. */
export function encodings(secret: string, basicAuth = false): string[] {
  // As sent in a header (trimmed) and as shown in one-line messages (whitespace collapsed).
  const bases = new Set([secret, secret.trim(), secret.replace(/\s+/g, " ").trim()]);
  bases.delete("");
  const forms = new Set<string>();
  for (const base of bases) {
    const json = jsonEscaped(base);
    for (
      const form of [
        base,
        json,
        jsonEscaped(json),
        asciiJsonEscaped(base),
        encodeURIComponent(base),
        encodeURIComponent(base).replaceAll("%20", "+"),
        encodeURI(base),
        htmlEscaped(base),
        githubEscaped(base),
      ]
    ) forms.add(form);
    if (basicAuth) forms.add(base64(base));
  }
  return [...forms];
}

function jsonEscaped(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** Python's json.dumps default: non-ASCII as \uXXXX. */
function asciiJsonEscaped(text: string): string {
  return jsonEscaped(text).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function htmlEscaped(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** How `::error …::message` workflow commands escape their data. */
function githubEscaped(text: string): string {
  return text.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

export function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
