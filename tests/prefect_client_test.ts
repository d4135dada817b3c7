/**
 * PrefectClient.close(): what a client still has under way — a request waiting for its answer, a
 * retry waiting out its backoff, a wait for /health — ends at once, says nothing more, and leaves
 * no timer behind (the test sanitizers check that). Against a local server that misbehaves.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { PrefectClient } from "../lib/prefect_client.ts";

/** A local server: `/slow` answers when released, everything else 503 with a long Retry-After. */
function misbehavingServer() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    hits.push(path);
    if (path === "/api/slow") {
      await released;
      return new Response("[]");
    }
    return new Response("busy", { status: 503, headers: { "retry-after": "30" } });
  });
  return {
    apiUrl: `http://127.0.0.1:${server.addr.port}/api`,
    hits,
    async [Symbol.asyncDispose]() {
      release();
      await server.shutdown();
    },
  };
}

Deno.test("close ends a retry's backoff at once, with nothing more said", async () => {
  await using server = misbehavingServer();
  const said: string[] = [];
  const client = new PrefectClient({ apiUrl: server.apiUrl, onRetry: (m) => said.push(m) });
  const reading = client.request("POST", "/deployments/filter", {});
  while (!said.length) await new Promise((resolve) => setTimeout(resolve, 5));
  assert(/503 Service Unavailable; retrying in 3\d\.\d s/.test(said[0]), said[0]);
  client.close();
  const error = await assertRejects(() => reading);
  assertEquals((error as Error).name, "AbortError");
  assertEquals(said.length, 1, "no retry after close");
  assertEquals(server.hits, ["/api/deployments/filter"]);
});

Deno.test("close ends a request waiting for its answer, and refuses new ones", async () => {
  await using server = misbehavingServer();
  const client = new PrefectClient({ apiUrl: server.apiUrl });
  const reading = client.request("GET", "/slow");
  while (!server.hits.length) await new Promise((resolve) => setTimeout(resolve, 5));
  client.close();
  assertEquals(((await assertRejects(() => reading)) as Error).name, "AbortError");
  const later = await assertRejects(() => client.request("GET", "/admin/version"));
  assertEquals((later as Error).name, "AbortError");
  assertEquals(server.hits, ["/api/slow"], "nothing sent after close");
});

Deno.test("close ends a wait for /health", async () => {
  await using server = misbehavingServer();
  const client = new PrefectClient({ apiUrl: server.apiUrl });
  const waiting = client.waitForHealth(60);
  while (!server.hits.length) await new Promise((resolve) => setTimeout(resolve, 5));
  client.close();
  assertEquals(((await assertRejects(() => waiting)) as Error).name, "AbortError");
});

Deno.test("a client closed before a retry's backoff begins does not wait it out", async () => {
  await using server = misbehavingServer();
  // Closed the moment the 503 is heard, before the 30 s backoff starts.
  const client: PrefectClient = new PrefectClient({
    apiUrl: server.apiUrl,
    onRetry: () => client.close(),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waitedOut = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("still waiting after 5 s"), 5000);
  });
  const outcome = await Promise.race([
    client.request("POST", "/deployments/filter", {}).then(() => "answered", (e) => e.name),
    waitedOut,
  ]);
  clearTimeout(timer);
  assertEquals(outcome, "AbortError");
});
