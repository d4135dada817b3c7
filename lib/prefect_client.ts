/**
 * A small client for Prefect 3's REST API, with the behaviour of Prefect's own Python client
 * where it matters: Bearer or Basic authentication (the auth string wins), custom headers,
 * lazy CSRF tokens, request timeouts, retries of 408/429/502/503 and dropped connections with
 * backoff that honours Retry-After, and a server version check. It counts reads and writes so
 * callers can prove a no-op sync wrote nothing. Credentials never appear in its messages, and
 * never leave for another origin: redirects are followed only within the API's origin, and only
 * for reads. Responses are checked before they are trusted: a 2xx that is not JSON, or not the
 * shape the caller expects, is an error naming the endpoint.
 */
import { base64, Redactor } from "./redactor.ts";

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
  /** What a 2xx body must be; anything else is an error naming the endpoint. */
  expect?: Shape;
}

/** A check of a response body, named for the error message ("a list of deployments"). */
export interface Shape {
  describe: string;
  test(data: unknown): boolean;
}

type FieldType = "string" | "number" | "boolean" | "object" | "array" | "string?" | "object?";

/** An object with these fields of these types (`?`: may also be null or absent). */
export function objectShape(describe: string, fields: Record<string, FieldType>): Shape {
  const is = (value: unknown, type: FieldType): boolean => {
    if (type.endsWith("?") && (value === null || value === undefined)) return true;
    switch (type.replace("?", "")) {
      case "array":
        return Array.isArray(value);
      case "object":
        return !!value && typeof value === "object" && !Array.isArray(value);
      case "string":
        return typeof value === "string";
      case "number":
        return typeof value === "number";
      default:
        return typeof value === "boolean";
    }
  };
  return {
    describe,
    test: (data) =>
      !!data && typeof data === "object" && !Array.isArray(data) &&
      Object.entries(fields).every(([k, t]) => is((data as Record<string, unknown>)[k], t)),
  };
}

/** A JSON array of items of one shape. */
export function listShape(describe: string, item: Shape): Shape {
  return { describe, test: (data) => Array.isArray(data) && data.every((d) => item.test(d)) };
}

/** Any object with a string `id`: what every filter endpoint lists. */
const ANY_ITEM = objectShape("an object with an id", { id: "string" });

export interface ApiResponse<T> {
  status: number;
  data: T;
  /** The server's clock (its `Date` header, ms since the epoch), when it sent one. */
  serverTime?: number;
}

const RETRY_STATUSES = [408, 429, 502, 503];
/** Redirects followed (within the API's origin, for reads) before giving up. */
const MAX_REDIRECTS = 5;
/** Longest excerpt of a response body quoted in an error. */
const EXCERPT_LENGTH = 300;
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

/**
 * What a server's API accepts beyond Prefect 3.0.3's, by release. Each flag is checked against
 * the real server's OpenAPI schema at every release the test harness runs (tests/sync_test.ts).
 */
export interface ServerCapabilities {
  /** Schedules have a `slug` and their own `parameters` (3.2.0). */
  scheduleSlugs: boolean;
  /** `PATCH /deployments/{id}` takes `pull_steps` and `parameter_openapi_schema` (3.2.0). */
  patchesStepsAndSchema: boolean;
  /** `concurrency_options.grace_period_seconds` (3.6.6). */
  concurrencyGracePeriod: boolean;
}

/** Older releases' deployments have no concurrency options or global limit, which sync uses. */
export const OLDEST_SUPPORTED = "3.0.3";

/** The capabilities of a Prefect 3 release; `undefined` (Prefect Cloud) has them all. */
export function capabilitiesOf(version: string | undefined): ServerCapabilities {
  const since = (release: string) =>
    version === undefined || compareVersions(version, release) >= 0;
  return {
    scheduleSlugs: since("3.2.0"),
    patchesStepsAndSchema: since("3.2.0"),
    concurrencyGracePeriod: since("3.6.6"),
  };
}

/**
 * Orders release numbers by their numeric parts (`3.10.0` after `3.9.1`); a pre-release or
 * development suffix (`3.2.0rc1`, `3.1.15.dev3`) counts as the release it leads to.
 */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => (v.match(/^\d+(\.\d+)*/)?.[0] ?? "0").split(".").map(Number);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return Math.sign(d);
  }
  return 0;
}

export class PrefectClient {
  readonly apiUrl: string;
  reads = 0;
  writes = 0;
  /** What the server accepts, known once `checkServer()` has read its version. */
  capabilities: ServerCapabilities = capabilitiesOf(undefined);
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
  /**
   * Set once the server stayed unreachable through a whole retry budget: callers stop starting
   * new work, and later requests get one attempt each instead of another budget.
   */
  unreachable: string | undefined;
  /** Everything printed about this client's work goes through it; secrets may be added. */
  readonly redactor: Redactor = new Redactor();
  readonly #settings: ClientSettings;
  #connected = false;
  #csrf: { token: string; client: string; expires: number } | undefined;
  #csrfFetch: Promise<void> | undefined;
  readonly #closed = new AbortController();

  constructor(settings: ClientSettings) {
    this.#settings = settings;
    this.apiUrl = settings.apiUrl;
    if (settings.apiKey) this.redactor.add(settings.apiKey);
    if (settings.authString) this.redactor.add(settings.authString, { basicAuth: true });
    for (const value of Object.values(settings.customHeaders ?? {})) this.redactor.add(value);
    const password = URL.canParse(settings.apiUrl) ? new URL(settings.apiUrl).password : "";
    if (password) {
      this.redactor.add(password);
      try {
        this.redactor.add(decodeURIComponent(password));
      } catch {
        // not percent-encoded UTF-8: the raw form is the only one
      }
    }
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

  /** Removes every secret this client knows, in every encoding, from a text meant for output. */
  redact(text: string): string {
    return this.redactor.redact(text);
  }

  /**
   * Ends whatever this client still has under way (requests, retry waits): each then rejects
   * with an AbortError and prints nothing. For reads begun early that turned out not to be needed.
   */
  close(): void {
    this.#closed.abort();
  }

  /** A request's signal: its own timeout, or the client closing. */
  #signal(timeoutMs: number): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#closed.signal]);
  }

  /** Polls `/health` until it answers or `seconds` pass (release commands start with the app). */
  async waitForHealth(seconds: number, onWait?: (message: string) => void): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    let told = false;
    while (true) {
      this.#closed.signal.throwIfAborted();
      try {
        const response = await fetch(`${this.apiUrl}/health`, {
          headers: this.#headers(false),
          redirect: "manual",
          signal: this.#signal(Math.min(5000, this.#settings.timeoutMs ?? 60_000)),
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
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())), this.#closed.signal);
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
          `${excerpt(this.redact(JSON.stringify(version)), 60)}).`,
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
    if (compareVersions(version, OLDEST_SUPPORTED) < 0) {
      throw new PrefectApiError(
        `The server at ${this.displayUrl} runs Prefect ${version}; deploy.ts needs Prefect ` +
          `${OLDEST_SUPPORTED} or later (deployment concurrency options arrived in 3.0.3).`,
        200,
        "GET",
        "/admin/version",
      );
    }
    this.capabilities = capabilitiesOf(version);
    return version;
  }

  /**
   * Pages through a `/filter` endpoint, 200 items a request. A server that ignores `offset`
   * would page forever or hand back a list with holes, so paging is bounded: beyond the first
   * full page it asks `/count` once, stops at that count, and refuses a page that repeats items.
   */
  async filterAll<T>(
    path: string,
    body: Record<string, unknown>,
    item: Shape = ANY_ITEM,
  ): Promise<T[]> {
    const limit = 200;
    const expect = listShape(`a list of ${item.describe}`, item);
    const page = async (offset: number) =>
      (await this.request<(T & { id: string })[]>("POST", path, { ...body, limit, offset }, {
        expect,
      })).data;
    const first = await page(0);
    if (first.length < limit) return first;
    const countPath = path.replace(/\/filter$/, "/count");
    const counting = this.request<number>("POST", countPath, body, {
      expect: { describe: "a count", test: (n) => Number.isSafeInteger(n) && (n as number) >= 0 },
    }).then((r) => r.data);
    counting.catch(() => {});
    const items = [...first];
    const seen = new Set(first.map((i) => i.id));
    for (let offset = limit;; offset += limit) {
      const [next, total] = await Promise.all([page(offset), counting]);
      for (const i of next) {
        if (seen.has(i.id)) {
          throw new PrefectApiError(
            `POST ${path} returned item ${i.id} again at offset ${offset}: the server does not ` +
              "page its results, so the list cannot be trusted.",
            200,
            "POST",
            path,
          );
        }
        seen.add(i.id);
        items.push(i);
      }
      if (next.length < limit || offset + limit >= total) return items;
    }
  }

  async request<T = unknown>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<ApiResponse<T>> {
    const isWrite = method !== "GET" && !/\/(filter|count|paginate)$/.test(path);
    // Once the server stayed down through a whole budget, each later request gets one try.
    const maxRetries = this.unreachable ? 0 : this.#settings.maxRetries ?? 5;
    const retryStatuses = [...RETRY_STATUSES, ...(this.#settings.retryCodes ?? [])];
    const where = `${method} ${path}`;
    let csrfRefreshed = false;
    let url = this.apiUrl + path;
    let redirects = 0;
    for (let attempt = 0;; attempt++) {
      this.#closed.signal.throwIfAborted();
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
        response = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          // Followed by hand below: fetch would carry credentials to any origin and re-send writes.
          redirect: "manual",
          signal: this.#signal(this.#settings.timeoutMs ?? 60_000),
        });
        text = await response.text();
        this.#connected = true;
      } catch (error) {
        if (isWrite) this.#releaseWriteSlot();
        this.#closed.signal.throwIfAborted();
        const reason = networkReason(error, (text) => this.redact(text));
        // A refused first connection means a wrong URL or a server that is not up: fail fast.
        const retryable = this.#connected && (!isWrite || options.resendAfterDrop !== false);
        if (retryable && attempt < maxRetries) {
          const delay = this.#backoff(attempt, null);
          this.#settings.onRetry?.(
            `${where}: ${reason}; retrying in ${formatSeconds(delay)} ` +
              `(attempt ${attempt + 2} of ${maxRetries + 1})`,
          );
          await sleep(delay, this.#closed.signal);
          continue;
        }
        const message = this.#connected
          ? `Lost the connection to ${this.displayUrl} during ${where}: ${reason}.`
          : `Cannot reach the Prefect API at ${this.displayUrl}: ${reason}. Is the server ` +
            "running and PREFECT_API_URL right? (--wait SECONDS waits for it to come up.)";
        if (retryable) this.unreachable ??= message;
        throw new ConnectionLost(message, 0, method, path);
      }
      if (isWrite) this.#releaseWriteSlot();
      const status = response.status;
      if (status >= 300 && status < 400 && response.headers.has("location")) {
        url = this.#redirectTarget(method, path, isWrite, url, response, ++redirects);
        attempt--;
        continue;
      }
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
      if (retryStatuses.includes(status)) {
        if (attempt < maxRetries) {
          const delay = this.#backoff(attempt, response.headers.get("retry-after"));
          this.#settings.onRetry?.(
            `${where}: ${status} ${response.statusText}; retrying in ` +
              `${formatSeconds(delay)} (attempt ${attempt + 2} of ${maxRetries + 1})`,
          );
          await sleep(delay, this.#closed.signal);
          continue;
        }
        // A gateway that cannot reach the server through a whole budget: the server is gone.
        if (status === 502) {
          this.unreachable ??= `${this.displayUrl} answered ${where} with 502 ${
            attempt + 1
          } times.`;
        }
      }
      const data = parseBody(text);
      // A status the caller takes as an answer ("404: absent") counts only from the API itself,
      // not from wherever a redirect led.
      const accepted = options.accept?.includes(status) && redirects === 0;
      if ((status >= 200 && status < 300) || accepted) {
        if (status >= 200 && status < 300) {
          if (data === NOT_JSON) throw this.#badBody(method, path, status, text, "JSON");
          if (options.expect && !options.expect.test(data)) {
            throw this.#badBody(method, path, status, text, options.expect.describe);
          }
        }
        const date = Date.parse(response.headers.get("date") ?? "");
        return {
          status,
          data: (data === NOT_JSON ? text : data) as T,
          serverTime: Number.isNaN(date) ? undefined : date,
        };
      }
      throw this.#httpError(method, path, status, data === NOT_JSON ? text : data);
    }
  }

  /**
   * Where a redirect may be followed: within the API's origin, for reads only, a few hops.
   * Anything else is refused with one line; nothing is re-sent and no credential leaves.
   */
  #redirectTarget(
    method: string,
    path: string,
    isWrite: boolean,
    from: string,
    response: Response,
    hops: number,
  ): string {
    const origin = new URL(this.apiUrl).origin;
    const status = response.status;
    const fail = (why: string) =>
      new PrefectApiError(
        this.redact(`${method} ${path} was redirected (${status}) ${why}`),
        status,
        method,
        path,
      );
    if (!URL.canParse(response.headers.get("location")!, from)) {
      throw fail("to an address that is not a URL.");
    }
    const target = new URL(response.headers.get("location")!, from);
    if (target.origin !== origin) {
      throw fail(
        `to another origin, ${target.origin}; deploy.ts sends credentials and writes only to ` +
          `${origin}. If the API moved, set PREFECT_API_URL (or --api-url) to its new address.`,
      );
    }
    if (isWrite) {
      throw fail(
        `to ${target.pathname}; a write is never re-sent through a redirect, so it was not ` +
          "applied. Set PREFECT_API_URL (or --api-url) to the address the server redirects to.",
      );
    }
    if (hops > MAX_REDIRECTS) throw fail(`more than ${MAX_REDIRECTS} times; giving up.`);
    return target.href;
  }

  /** A 2xx whose body is not what the endpoint returns: nothing in it is trusted. */
  #badBody(
    method: string,
    path: string,
    status: number,
    text: string,
    expected: string,
  ): PrefectApiError {
    const shown = excerpt(oneLine(this.redact(text)), 120);
    return new PrefectApiError(
      `${method} ${path} answered ${status} with a body that is not ${expected}` +
        (shown ? `: ${JSON.stringify(shown)}.` : " (empty)."),
      status,
      method,
      path,
    );
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
      headers.Authorization = `Basic ${base64(this.#settings.authString)}`;
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
    const detail = excerpt(oneLine(this.redact(describeError(data))));
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

const NOT_JSON = Symbol("not JSON");

function parseBody(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

/**
 * Prefect's error bodies, `{detail}`, `{exception_message, exception_detail}`, or text, whole:
 * redact it before flattening or shortening it.
 */
function describeError(data: unknown): string {
  if (data === null || data === undefined) return "";
  if (typeof data === "string") return data;
  const body = data as Record<string, unknown>;
  if (typeof body.detail === "string") return body.detail;
  const parts: string[] = [];
  if (typeof body.exception_message === "string") parts.push(body.exception_message);
  const detail = body.exception_detail ?? body.detail;
  if (Array.isArray(detail)) {
    for (const item of detail.slice(0, 3)) {
      const e = item as { loc?: unknown[]; msg?: string };
      parts.push(`${(e.loc ?? []).join(".")}: ${e.msg ?? JSON.stringify(item)}`);
    }
  }
  return parts.join(" ") || JSON.stringify(data);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** At most `max` characters of an already redacted text. */
function excerpt(text: string, max = EXCERPT_LENGTH): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function networkReason(error: unknown, redact: (text: string) => string): string {
  const e = error as Error;
  if (e?.name === "TimeoutError") return "the request timed out";
  const text = `${e?.message ?? error} ${(e?.cause as Error)?.message ?? ""}`;
  if (/refused/i.test(text)) return "connection refused";
  if (/dns|lookup|name or service|nodename/i.test(text)) return "the host name does not resolve";
  // rustls' words for a peer that answered the ClientHello with something other than TLS.
  if (/InvalidContentType|corrupt message|wrong version number/i.test(text)) {
    return "the TLS handshake failed: the server does not speak TLS (is it http://?)";
  }
  if (/reset|closed|broken pipe|incomplete|body|eof/i.test(text)) {
    return "the connection was closed before a full response";
  }
  if (/certificate|tls|ssl/i.test(text)) return "the TLS handshake failed";
  return excerpt(oneLine(redact(e?.message ?? String(error))));
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller then checks it). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
