/**
 * A recording, fault-injecting HTTP proxy to put between deploy.ts and a real Prefect server.
 * Every request is recorded; a rule can answer in the server's place (a status), or forward and
 * then drop the connection before the response is complete (the write happened, the client
 * cannot know). Rules fire `times` times, then let requests through.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Headers;
  body: unknown;
  status: number;
  /** performance.now() when the request arrived. */
  at: number;
}

export interface FaultRule {
  method?: string;
  /** Matched against the path after the API prefix, e.g. /deployments/ or /deployments/<id>. */
  path?: RegExp;
  /** Matched against the request body text (e.g. a deployment name). */
  body?: RegExp;
  times: number;
  /**
   * A status to answer with, without forwarding; "drop" after forwarding; or "hold": forward
   * once `until` settles (a slow server the test releases).
   */
  respond: number | "drop" | "hold";
  until?: Promise<unknown>;
  headers?: Record<string, string>;
  responseBody?: string;
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
    if (rule?.respond === "hold") {
      rule.times--;
      await rule.until;
    } else if (rule && rule.respond !== "drop") {
      rule.times--;
      record.status = rule.respond;
      return new Response(rule.responseBody ?? JSON.stringify({ detail: "injected fault" }), {
        status: rule.respond,
        headers: { "content-type": "application/json", ...rule.headers },
      });
    }
    const headers = new Headers(request.headers);
    headers.delete("host");
    const response = await fetch(`${upstream.origin}${prefix}${path}`, {
      method: request.method,
      headers,
      body: text === "" ? undefined : text,
    });
    const payload = new Uint8Array(await response.arrayBuffer());
    record.status = response.status;
    if (rule?.respond === "drop") {
      rule.times--;
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
    return new Response(response.status === 204 ? null : payload, {
      status: response.status,
      headers: responseHeaders,
    });
  });
  proxy.apiUrl = `http://127.0.0.1:${server.addr.port}${prefix}`;
  return proxy;
}
