/**
 * A recording, fault-injecting HTTP proxy to put between deploy.ts and a real Prefect server.
 * Every request is recorded; a rule can answer in the server's place (a status, a body — which
 * may echo the request, a redirect), forward and then drop the connection before the response
 * is complete (the write happened, the client cannot know), or forward late, rewritten, or with
 * another status. Rules fire `times` times, then let requests through.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Headers;
  body: unknown;
  status: number;
  /** performance.now() when the request arrived. */
  at: number;
  /** performance.now() when the upstream's whole answer was in (forwarded requests only). */
  answered?: number;
}

export interface FaultRule {
  method?: string;
  /** Matched against the path after the API prefix, e.g. /deployments/ or /deployments/<id>. */
  path?: RegExp;
  /** Matched against the request body text (e.g. a deployment name). */
  body?: RegExp;
  times: number;
  /**
   * A status to answer with, without forwarding; "drop" after forwarding; "forward" to pass the
   * request on (late, rewritten, or answered with `status` after the server applied it).
   */
  respond: number | "drop" | "forward";
  headers?: Record<string, string>;
  /** The answer's body; a function sees the request (to echo its headers, say). */
  responseBody?: string | ((request: { path: string; headers: Headers; text: string }) => string);
  /** Wait this long before acting (a slow server: forwarded requests arrive late). */
  delayMs?: number;
  /** Wait until this settles before acting (a server held up until the test releases it). */
  until?: Promise<unknown>;
  /** "forward": the request body the server gets instead. */
  rewriteRequest?: (text: string) => string;
  /** "forward": the status the client gets instead of the server's. */
  status?: number;
  /** Called each time the rule fires, after it acted (e.g. to shut the proxy down). */
  then?: () => void;
}

export interface FaultProxy {
  /** The proxy's API URL (same path prefix as the upstream's). */
  apiUrl: string;
  requests: RecordedRequest[];
  rules: FaultRule[];
  /** Requests that change something, as the server would count them. */
  writes(): RecordedRequest[];
  /** Writes other than apply's lock (a Prefect variable taken, renewed and deleted). */
  syncWrites(): RecordedRequest[];
  /** The lock's own requests, in order. */
  lockRequests(): RecordedRequest[];
  /** When set, requests whose Authorization header differs get 401 (a server with auth). */
  requireAuthorization?: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function startFaultProxy(upstreamApiUrl: string): FaultProxy {
  const upstream = new URL(upstreamApiUrl);
  const prefix = upstream.pathname.replace(/\/$/, "");
  const proxy: FaultProxy = {
    apiUrl: "",
    requests: [],
    rules: [],
    writes() {
      return this.requests.filter((r) =>
        r.method !== "GET" && !/\/(filter|count|paginate)$/.test(r.path)
      );
    },
    syncWrites() {
      const lock = new Set(this.lockRequests());
      return this.writes().filter((r) => !lock.has(r));
    },
    lockRequests() {
      return this.requests.filter((r) =>
        r.path.startsWith("/variables/") &&
        (/^deploy_ts_lock__/.test((r.body as { name?: string } | null)?.name ?? "") ||
          /^\/variables\/(name\/deploy_ts_lock__|[0-9a-f-]{36}$)/.test(r.path))
      );
    },
    close: async () => await server.shutdown(),
    [Symbol.asyncDispose]: async () => await server.shutdown(),
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // A dropped response is an error by design; keep the test output quiet about it.
    onError: () => new Response("proxy error", { status: 500 }),
  }, async (request) => {
    const url = new URL(request.url);
    const path = url.pathname.slice(prefix.length) + url.search;
    const text = await request.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    const record: RecordedRequest = {
      method: request.method,
      path,
      headers: request.headers,
      body,
      status: 0,
      at: performance.now(),
    };
    proxy.requests.push(record);
    if (
      proxy.requireAuthorization !== undefined && !path.startsWith("/health") &&
      request.headers.get("authorization") !== proxy.requireAuthorization
    ) {
      record.status = 401;
      return Response.json({ exception_message: "Unauthorized" }, { status: 401 });
    }
    const rule = proxy.rules.find((r) =>
      r.times > 0 && (!r.method || r.method === request.method) &&
      (!r.path || r.path.test(path)) && (!r.body || r.body.test(text))
    );
    if (rule) rule.times--;
    if (rule?.delayMs) await new Promise((resolve) => setTimeout(resolve, rule.delayMs));
    if (rule?.until) await rule.until;
    if (rule && typeof rule.respond === "number") {
      record.status = rule.respond;
      const body = typeof rule.responseBody === "function"
        ? rule.responseBody({ path, headers: request.headers, text })
        : rule.responseBody ?? JSON.stringify({ detail: "injected fault" });
      rule.then?.();
      return new Response(body, {
        status: rule.respond,
        headers: { "content-type": "application/json", ...rule.headers },
      });
    }
    const headers = new Headers(request.headers);
    headers.delete("host");
    const sent = rule?.rewriteRequest ? rule.rewriteRequest(text) : text;
    const response = await fetch(`${upstream.origin}${prefix}${path}`, {
      method: request.method,
      headers,
      body: sent === "" ? undefined : sent,
      redirect: "manual",
    });
    const payload = new Uint8Array(await response.arrayBuffer());
    record.answered = performance.now();
    record.status = rule?.status ?? response.status;
    rule?.then?.();
    if (rule?.respond === "drop") {
      record.status = -1;
      // Half a body, then the connection breaks: the server did the work, the client never hears.
      const broken = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(payload.slice(0, Math.floor(payload.length / 2)));
          controller.error(new Error("connection dropped by the fault proxy"));
        },
      });
      // A promised length the body never reaches; 204 cannot carry a body, so it becomes 200.
      return new Response(broken, {
        status: response.status === 204 ? 200 : response.status,
        headers: {
          "content-type": "application/json",
          "content-length": `${Math.max(payload.length, 2)}`,
        },
      });
    }
    const responseHeaders = new Headers(response.headers);
    responseHeaders.delete("content-encoding");
    responseHeaders.delete("content-length");
    const status = rule?.status ?? response.status;
    return new Response(status === 204 ? null : payload, { status, headers: responseHeaders });
  });
  proxy.apiUrl = `http://127.0.0.1:${server.addr.port}${prefix}`;
  return proxy;
}
