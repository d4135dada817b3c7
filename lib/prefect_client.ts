/**
 * A small client for Prefect 3's REST API, with the behaviour of Prefect's own Python client
 * where it matters: Bearer or Basic authentication (the auth string wins), custom headers,
 * lazy CSRF tokens, request timeouts, retries of 408/429/502/503 and dropped connections with
 * backoff that honours Retry-After, and a server version check. It counts reads and writes so
 * callers can prove a no-op sync wrote nothing. Credentials never appear in its messages.
 */

/** A failure talking to the server, phrased for the user; `status` is 0 without a response. */
export class PrefectApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** No response arrived: refused, reset, timed out. The request may or may not have been applied. */
export class ConnectionLost extends PrefectApiError {}

export interface ClientSettings {
  apiUrl: string;
  apiKey?: string;
  authString?: string;
  customHeaders?: Record<string, string>;
  /** Per attempt. */
  timeoutMs?: number;
  /** Retries after the first attempt. */
  maxRetries?: number;
  /** Extra status codes to retry. */
  retryCodes?: number[];
  /** First backoff delay; doubles per retry. */
  retryBaseMs?: number;
  /** Told about every retry, for progress output. */
  onRetry?: (message: string) => void;
}

export interface RequestOptions {
  /** Statuses returned to the caller instead of thrown (404 for "absent", say). */
  accept?: number[];
  /**
   * Whether a request whose connection dropped may be sent again. False for creates: the
   * server may have applied it, so the caller re-reads first.
   */
  resendAfterDrop?: boolean;
}

export interface ApiResponse<T> {
  status: number;
  data: T;
}

const RETRY_STATUSES = [408, 429, 502, 503];
const PROTECTED_HEADERS = ["user-agent", "prefect-csrf-token", "prefect-csrf-client"];
const CLOUD_API_PREFIX = "https://api.prefect.cloud/";
const USER_AGENT = "deploy.ts (Prefect API 0.8.4)";

/** Reads the client settings Prefect users already have in their environment. */
export function settingsFromEnvironment(
  env: (name: string) => string | undefined,
  apiUrlFlag?: string,
): ClientSettings {
  const apiUrl = apiUrlFlag ?? env("PREFECT_API_URL");
  if (!apiUrl) {
    throw new SettingsError(
      "PREFECT_API_URL is not set. Set it to your server's API, e.g. " +
        "http://127.0.0.1:4200/api, or pass --api-url.",
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(apiUrl);
  } catch {
    throw new SettingsError(
      `${apiUrlFlag ? "--api-url" : "PREFECT_API_URL"} "${apiUrl}" is not a URL.`,
    );
  }
  if (!["http:", "https:"].includes(parsed.protocol)) {
    throw new SettingsError(
      `${apiUrlFlag ? "--api-url" : "PREFECT_API_URL"} must start with http:// or https://.`,
    );
  }
  let customHeaders: Record<string, string> | undefined;
  const rawHeaders = env("PREFECT_CLIENT_CUSTOM_HEADERS");
  if (rawHeaders) {
    let value: unknown;
    try {
      value = JSON.parse(rawHeaders);
    } catch {
      value = undefined;
    }
    if (
      !value || typeof value !== "object" || Array.isArray(value) ||
      Object.values(value).some((v) => typeof v !== "string")
    ) {
      throw new SettingsError(
        'PREFECT_CLIENT_CUSTOM_HEADERS must be a JSON object of strings, e.g. {"X-Team": "data"}.',
      );
    }
    customHeaders = value as Record<string, string>;
  }
  const number = (name: string, fallback: number) => {
    const raw = env(name);
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) {
      throw new SettingsError(`${name} must be a non-negative number, not "${raw}".`);
    }
    return value;
  };
  const extraCodes = (env("PREFECT_CLIENT_RETRY_EXTRA_CODES") ?? "")
    .split(/[,\s{}]+/).filter(Boolean).map(Number).filter(Number.isInteger);
  return {
    apiUrl: apiUrl.replace(/\/+$/, ""),
    apiKey: env("PREFECT_API_KEY") || undefined,
    authString: env("PREFECT_API_AUTH_STRING") || undefined,
    customHeaders,
    timeoutMs: number("PREFECT_API_REQUEST_TIMEOUT", 60) * 1000,
    maxRetries: number("PREFECT_CLIENT_MAX_RETRIES", 5),
    retryCodes: extraCodes,
  };
}

/** A setting is missing or malformed; the message names it. */
export class SettingsError extends Error {}

export class PrefectClient {
  readonly apiUrl: string;
  reads = 0;
  writes = 0;
  /** How often the server said it was busy (429, 503). */
  overloaded = 0;
  /**
   * Writes in flight at most; halved each time the server says it is busy. A SQLite-backed
   * server answers concurrent writers with 503 (SQLITE_BUSY), and retries that all come back at
   * once only collide again, so retries queue for a slot too.
   */
  writeConcurrency = Number.POSITIVE_INFINITY;
  #writesInFlight = 0;
  #writeWaiters: (() => void)[] = [];
  readonly #settings: ClientSettings;
  readonly #secrets: string[];
  #connected = false;
  #csrf: { token: string; client: string; expires: number } | undefined;
  #csrfFetch: Promise<void> | undefined;

  constructor(settings: ClientSettings) {
    this.#settings = settings;
    this.apiUrl = settings.apiUrl;
    const secrets = [
      settings.apiKey,
      settings.authString,
      settings.authString && btoa(settings.authString),
      ...Object.values(settings.customHeaders ?? {}),
    ];
    // Longest first, so a secret containing another is hidden whole.
    this.#secrets = secrets.filter((s): s is string => !!s && s.length >= 3)
      .sort((a, b) => b.length - a.length);
  }

  /** The API URL as it may be shown: no user-info. */
  get displayUrl(): string {
    const url = new URL(this.apiUrl);
    url.username = "";
    url.password = "";
    return url.toString().replace(/\/$/, "");
  }

  get isCloud(): boolean {
    return this.apiUrl.startsWith(CLOUD_API_PREFIX);
  }

  /** Removes every credential this client knows from a text meant for output. */
  redact(text: string): string {
    let result = text;
    for (const secret of this.#secrets) result = result.split(secret).join("***");
    return result;
  }

  /** Polls `/health` until it answers or `seconds` pass (release commands start with the app). */
  async waitForHealth(seconds: number, onWait?: (message: string) => void): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    let told = false;
    while (true) {
      try {
        const response = await fetch(`${this.apiUrl}/health`, {
          headers: this.#headers(false),
          signal: AbortSignal.timeout(Math.min(5000, this.#settings.timeoutMs ?? 60_000)),
        });
        await response.body?.cancel();
        this.reads++;
        if (response.ok) return;
      } catch {
        this.reads++;
      }
      if (Date.now() >= deadline) {
        throw new PrefectApiError(
          `The Prefect API at ${this.displayUrl} did not become healthy within ${seconds} s ` +
            "(--wait).",
          0,
          "GET",
          "/health",
        );
      }
      if (!told) {
        onWait?.(`waiting up to ${seconds} s for ${this.displayUrl}/health`);
        told = true;
      }
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
  }

  /**
   * Checks that the URL is a Prefect 3 API the credentials open. Against Prefect Cloud, whose
   * version endpoint is not public, it reads the work pools instead (same errors, no version).
   */
  async checkServer(): Promise<string | undefined> {
    if (this.isCloud) {
      await this.request("POST", "/work_pools/filter", { limit: 1 });
      return undefined;
    }
    let version: unknown;
    try {
      version = (await this.request<unknown>("GET", "/admin/version")).data;
    } catch (error) {
      if (error instanceof PrefectApiError && error.status === 404) {
        throw new PrefectApiError(
          `No Prefect API at ${this.displayUrl} (GET /admin/version: 404). The URL must be the ` +
            "API's, usually ending in /api, e.g. http://127.0.0.1:4200/api.",
          404,
          "GET",
          "/admin/version",
        );
      }
      throw error;
    }
    if (typeof version !== "string") {
      throw new PrefectApiError(
        `${this.displayUrl} does not answer like a Prefect API (GET /admin/version returned ` +
          `${JSON.stringify(version).slice(0, 60)}).`,
        200,
        "GET",
        "/admin/version",
      );
    }
    if (!version.startsWith("3.")) {
      throw new PrefectApiError(
        `The server at ${this.displayUrl} runs Prefect ${version}; deploy.ts needs Prefect 3.`,
        200,
        "GET",
        "/admin/version",
      );
    }
    return version;
  }

  /** Pages through a `/filter` endpoint, 200 items a request. */
  async filterAll<T>(path: string, body: Record<string, unknown>): Promise<T[]> {
    const limit = 200;
    const items: T[] = [];
    for (let offset = 0;; offset += limit) {
      const page = (await this.request<T[]>("POST", path, { ...body, limit, offset })).data;
      items.push(...page);
      if (page.length < limit) return items;
    }
  }

  async request<T = unknown>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<ApiResponse<T>> {
    const isWrite = method !== "GET" && !/\/(filter|count|paginate)$/.test(path);
    const maxRetries = this.#settings.maxRetries ?? 5;
    const retryStatuses = [...RETRY_STATUSES, ...(this.#settings.retryCodes ?? [])];
    let csrfRefreshed = false;
    for (let attempt = 0;; attempt++) {
      const headers = this.#headers(body !== undefined);
      // The CSRF middleware (off by default) guards every method but GET, filter reads included.
      if (method !== "GET") Object.assign(headers, await this.#csrfHeaders());
      let response: Response;
      let text: string;
      if (isWrite) {
        this.writes++;
        await this.#acquireWriteSlot();
      } else this.reads++;
      try {
        response = await fetch(this.apiUrl + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.#settings.timeoutMs ?? 60_000),
        });
        text = await response.text();
        this.#connected = true;
      } catch (error) {
        if (isWrite) this.#releaseWriteSlot();
        const reason = networkReason(error);
        // A refused first connection means a wrong URL or a server that is not up: fail fast.
        const retryable = this.#connected && (!isWrite || options.resendAfterDrop !== false);
        if (retryable && attempt < maxRetries) {
          const delay = this.#backoff(attempt, null);
          this.#settings.onRetry?.(
            `${method} ${path}: ${reason}; retrying in ${formatSeconds(delay)} ` +
              `(attempt ${attempt + 2} of ${maxRetries + 1})`,
          );
          await sleep(delay);
          continue;
        }
        throw new ConnectionLost(
          this.#connected
            ? `Lost the connection to ${this.displayUrl} during ${method} ${path}: ${reason}.`
            : `Cannot reach the Prefect API at ${this.displayUrl}: ${reason}. Is the server ` +
              "running and PREFECT_API_URL right? (--wait SECONDS waits for it to come up.)",
          0,
          method,
          path,
        );
      }
      if (isWrite) this.#releaseWriteSlot();
      const status = response.status;
      if (
        status === 403 && method !== "GET" && !csrfRefreshed && !this.isCloud &&
        /CSRF token|client identifier/i.test(text)
      ) {
        // Rejected before it ran: fetch a token (once for all requests in flight) and resend.
        csrfRefreshed = true;
        await this.#refreshCsrf();
        attempt--;
        continue;
      }
      if (status === 429 || status === 503) this.overloaded++;
      if (retryStatuses.includes(status) && attempt < maxRetries) {
        const delay = this.#backoff(attempt, response.headers.get("retry-after"));
        this.#settings.onRetry?.(
          `${method} ${path}: ${status} ${response.statusText}; retrying in ` +
            `${formatSeconds(delay)} (attempt ${attempt + 2} of ${maxRetries + 1})`,
        );
        await sleep(delay);
        continue;
      }
      const data = parseBody(text);
      if ((status >= 200 && status < 300) || options.accept?.includes(status)) {
        return { status, data: data as T };
      }
      throw this.#httpError(method, path, status, data);
    }
  }

  async #acquireWriteSlot(): Promise<void> {
    const limit = () =>
      Math.max(1, Math.floor(this.writeConcurrency / 2 ** Math.min(this.overloaded, 30)));
    while (this.#writesInFlight >= limit()) {
      await new Promise<void>((resolve) => this.#writeWaiters.push(resolve));
    }
    this.#writesInFlight++;
  }

  #releaseWriteSlot() {
    this.#writesInFlight--;
    this.#writeWaiters.shift()?.();
  }

  #headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { "User-Agent": USER_AGENT };
    if (hasBody) headers["Content-Type"] = "application/json";
    // As in Prefect's client, the auth string wins when both are set.
    if (this.#settings.authString) {
      headers.Authorization = `Basic ${btoa(this.#settings.authString)}`;
    } else if (this.#settings.apiKey) {
      headers.Authorization = `Bearer ${this.#settings.apiKey}`;
    }
    for (const [name, value] of Object.entries(this.#settings.customHeaders ?? {})) {
      if (!PROTECTED_HEADERS.includes(name.toLowerCase())) headers[name] = value;
    }
    return headers;
  }

  /** The CSRF headers once the server has asked for them; tokens are renewed before expiry. */
  async #csrfHeaders(): Promise<Record<string, string>> {
    if (!this.#csrf) return {};
    if (this.#csrf.expires < Date.now() + 5000) await this.#refreshCsrf();
    return this.#csrf
      ? { "Prefect-Csrf-Token": this.#csrf.token, "Prefect-Csrf-Client": this.#csrf.client }
      : {};
  }

  /** One token fetch shared by every request waiting for it. */
  #refreshCsrf(): Promise<void> {
    this.#csrfFetch ??= (async () => {
      const client = crypto.randomUUID();
      const { status, data } = await this.request<{ token?: string; expiration?: string }>(
        "GET",
        `/csrf-token?client=${client}`,
        undefined,
        { accept: [404, 422] },
      );
      this.#csrf = status === 200 && data?.token
        ? {
          token: data.token,
          client,
          expires: data.expiration ? Date.parse(data.expiration) : Date.now() + 3_600_000,
        }
        : undefined;
    })().finally(() => this.#csrfFetch = undefined);
    return this.#csrfFetch;
  }

  #backoff(attempt: number, retryAfter: string | null): number {
    const jitter = 1 + (Math.random() * 0.4 - 0.2);
    if (retryAfter) {
      const seconds = Number(retryAfter);
      const ms = Number.isFinite(seconds)
        ? seconds * 1000
        : Math.max(0, Date.parse(retryAfter) - Date.now());
      if (Number.isFinite(ms)) return Math.min(ms, 300_000) * Math.max(1, jitter);
    }
    const base = this.#settings.retryBaseMs ?? 1000;
    return Math.min(base * 2 ** attempt, 30_000) * jitter;
  }

  #httpError(method: string, path: string, status: number, data: unknown): PrefectApiError {
    const detail = this.redact(describeError(data));
    const where = `${method} ${path}`;
    let message: string;
    if (status === 401) {
      message =
        `The Prefect API at ${this.displayUrl} refused the credentials (401 on ${where}). ` +
        "Check PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING (self-hosted).";
    } else if (status === 403 && !path.startsWith("/csrf")) {
      message = `The Prefect API refused ${where} (403): ${
        detail.replace(/\.$/, "") || "forbidden"
      }.`;
    } else {
      message = `${where} failed: ${status}${detail ? ` ${detail}` : ""}`;
    }
    return new PrefectApiError(this.redact(message), status, method, path, detail);
  }
}

function parseBody(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Prefect's error bodies: `{detail}`, `{exception_message, exception_detail}`, or text. */
function describeError(data: unknown): string {
  if (data === null || data === undefined) return "";
  if (typeof data === "string") return oneLine(data);
  const body = data as Record<string, unknown>;
  if (typeof body.detail === "string") return oneLine(body.detail);
  const parts: string[] = [];
  if (typeof body.exception_message === "string") parts.push(body.exception_message);
  const detail = body.exception_detail ?? body.detail;
  if (Array.isArray(detail)) {
    for (const item of detail.slice(0, 3)) {
      const e = item as { loc?: unknown[]; msg?: string };
      parts.push(`${(e.loc ?? []).join(".")}: ${e.msg ?? JSON.stringify(item)}`);
    }
  }
  return oneLine(parts.join(" ") || JSON.stringify(data));
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}

function networkReason(error: unknown): string {
  const e = error as Error;
  if (e?.name === "TimeoutError") return "the request timed out";
  const text = `${e?.message ?? error} ${(e?.cause as Error)?.message ?? ""}`;
  if (/refused/i.test(text)) return "connection refused";
  if (/dns|lookup|name or service|nodename/i.test(text)) return "the host name does not resolve";
  if (/reset|closed|broken pipe|incomplete|body|eof/i.test(text)) {
    return "the connection was closed before a full response";
  }
  if (/certificate|tls|ssl/i.test(text)) return "the TLS handshake failed";
  return oneLine(e?.message ?? String(error));
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
