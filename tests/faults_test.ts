/**
 * Faults between deploy.ts and a real Prefect server (with CSRF protection on), injected by a
 * proxy: retries, Retry-After, a connection dropped after the server applied a write, a 500 on
 * one deployment, bad URLs and credentials. Secrets must never reach any output.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { freePort, startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";

const FLOW = `from prefect import flow


@flow
def job(n: int = 1):
    return n
`;

function manifest(names: string[], limit = 1): string {
  return `name: faults
deployments:
${
    names.map((name) =>
      `  - name: ${name}
    entrypoint: flows/job.py:job
    parameters: {n: ${limit}}
    work_pool: {name: pool-f}
    schedules:
      - slug: daily
        cron: "0 1 * * *"
        timezone: UTC
        active: true
`
    ).join("")
  }`;
}

const API_KEY = "pnu_secretKEY0123456789abcdef";
const AUTH_STRING = "admin:hunter2-very-secret";

/** A proxy to `apiUrl` whose /admin/version answers `version` once. */
function proxyAnsweringVersion(apiUrl: string, version: string) {
  const proxy = startFaultProxy(apiUrl);
  proxy.rules.push({
    method: "GET",
    path: /^\/admin\/version$/,
    times: 1,
    respond: 200,
    responseBody: JSON.stringify(version),
  });
  return proxy;
}

function assertNoSecrets(result: CliResult) {
  for (const secret of [API_KEY, AUTH_STRING, "hunter2", btoa(AUTH_STRING)]) {
    assert(
      !result.stdout.includes(secret) && !result.stderr.includes(secret),
      `output contains a secret:\n${result.stdout}\n${result.stderr}`,
    );
  }
}

Deno.test("faults between deploy.ts and a real Prefect server", async (t) => {
  await using server = await startPrefectServer({
    env: { PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED: "true" },
  });
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-f", type: "process" });
  await using project = await tempProject({
    "flows/job.py": FLOW,
    "prefect/jobs.yaml": manifest(["a", "b", "c"]),
  });
  const deployThrough = (apiUrl: string, args: string[], env: Record<string, string> = {}) =>
    runDeploy(args, { cwd: project.dir, env: { PREFECT_API_URL: apiUrl, ...env } });
  const deployments = async () =>
    (await call<{ name: string; schedules: { id: string }[] }[]>(
      "POST",
      "/deployments/filter",
      {},
    )).map((d) => `${d.name}:${d.schedules.length}`).sort();

  await t.step("a 503 on a create is retried and the apply succeeds", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "POST", path: /^\/deployments\/$/, times: 1, respond: 503 });
    await Deno.writeTextFile(`${project.dir}/prefect/jobs.yaml`, manifest(["a"]));
    const result = await deployThrough(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 0, result.stderr);
    assertMatch(result.stderr, /POST \/deployments\/: 503 .*retrying in/);
    assertMatch(result.stdout, /job\/a\s+\S+\s+created/);
    assert(proxy.requests.some((r) => r.headers.get("prefect-csrf-token")), "CSRF token sent");
    assertEquals(await deployments(), ["a:1"]);
  });

  await t.step("a 429 waits for Retry-After before trying again", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({
      method: "POST",
      path: /^\/deployments\/$/,
      times: 1,
      respond: 429,
      headers: { "Retry-After": "2" },
    });
    await Deno.writeTextFile(`${project.dir}/prefect/jobs.yaml`, manifest(["a", "b"]));
    const result = await deployThrough(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 0, result.stderr);
    const posts = proxy.requests.filter((r) => r.method === "POST" && r.path === "/deployments/");
    // A real 503 (SQLite busy) may come on top of the injected 429; it is retried too.
    assertEquals(posts[0].status, 429);
    assertEquals(posts.at(-1)!.status, 201);
    assert(posts[1].at - posts[0].at >= 2000, `retried after ${posts[1].at - posts[0].at} ms`);
    assertEquals(await deployments(), ["a:1", "b:1"]);
  });

  await t.step(
    "a connection dropped after the server created a deployment is not a duplicate",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.rules.push({ method: "POST", path: /^\/deployments\/$/, times: 1, respond: "drop" });
      await Deno.writeTextFile(`${project.dir}/prefect/jobs.yaml`, manifest(["a", "b", "c"]));
      const result = await deployThrough(proxy.apiUrl, ["apply"]);
      assertEquals(result.code, 0, result.stderr);
      const posts = proxy.requests.filter((r) => r.method === "POST" && r.path === "/deployments/");
      assertEquals(posts.length, 1, "the create was not sent again");
      assert(proxy.requests.some((r) => r.path === "/deployments/name/job/c"), "re-read first");
      const [id] = result.stdout.match(/job\/c\s+(\S+)\s+created/)!.slice(1);
      const c = await call<{ id: string }>("GET", "/deployments/name/job/c");
      assertEquals(c.id, id);
      assertEquals(await deployments(), ["a:1", "b:1", "c:1"]);
    },
  );

  await t.step("a dropped PATCH is sent again and converges", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "PATCH", times: 1, respond: "drop" });
    await Deno.writeTextFile(`${project.dir}/prefect/jobs.yaml`, manifest(["a", "b", "c"], 5));
    const result = await deployThrough(proxy.apiUrl, ["apply", "--concurrency", "1"]);
    assertEquals(result.code, 0, result.stdout + result.stderr);
    assertMatch(result.stderr, /PATCH \/deployments\/\S+: the connection was closed .*retrying/);
    assertStringIncludes(result.stdout, "Apply: 0 created, 3 updated, 0 deleted, 0 unchanged.");
    const again = await deployThrough(server.apiUrl, ["plan", "--detailed-exitcode"]);
    assertEquals(again.code, 0, again.stdout);
  });

  await t.step(
    "a 500 on one deployment fails the apply, reports it, and a rerun converges",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/$/,
        body: /"name":"e"/,
        times: 6,
        respond: 500,
      });
      await Deno.writeTextFile(
        `${project.dir}/prefect/jobs.yaml`,
        manifest(["a", "b", "c", "d", "e"], 7),
      );
      const failed = await deployThrough(proxy.apiUrl, ["apply"]);
      assertEquals(failed.code, 1);
      assertMatch(
        failed.stdout,
        /job\/e\s+-\s+failed \(create not applied\): POST \/deployments\/ failed: 500/,
      );
      assertMatch(failed.stdout, /job\/d\s+\S+\s+created/);
      assertMatch(failed.stdout, /job\/a\s+\S+\s+updated/);
      assertEquals(
        failed.stdout.trim().split("\n").at(-1),
        "Apply: 1 created, 3 updated, 0 deleted, 0 unchanged, 1 failed.",
      );
      const rerun = await deployThrough(server.apiUrl, ["apply"]);
      assertEquals(rerun.code, 0, rerun.stderr);
      assertStringIncludes(rerun.stdout, "Apply: 1 created, 0 updated, 0 deleted, 4 unchanged.");
      assertEquals(await deployments(), ["a:1", "b:1", "c:1", "d:1", "e:1"]);
    },
  );

  await t.step(
    "credentials: the auth string wins over the key and never reaches output",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.requireAuthorization = `Basic ${btoa(AUTH_STRING)}`;
      const secrets = { PREFECT_API_KEY: API_KEY, PREFECT_API_AUTH_STRING: AUTH_STRING };
      const ok = await deployThrough(proxy.apiUrl, ["plan"], {
        ...secrets,
        PREFECT_CLIENT_CUSTOM_HEADERS: '{"X-Team": "data", "User-Agent": "not-allowed"}',
      });
      assertEquals(ok.code, 0, ok.stderr);
      assertNoSecrets(ok);
      assert(proxy.requests.every((r) => r.headers.get("x-team") === "data"), "custom header");
      assert(
        proxy.requests.every((r) => r.headers.get("user-agent")?.startsWith("deploy.ts")),
        "protected headers are not overridden",
      );
      const badHeaders = await deployThrough(proxy.apiUrl, ["plan"], {
        PREFECT_CLIENT_CUSTOM_HEADERS: "{not json",
      });
      assertEquals(badHeaders.code, 1);
      assertStringIncludes(
        badHeaders.stderr,
        "error: PREFECT_CLIENT_CUSTOM_HEADERS must be a JSON object of strings",
      );
      // A server that echoes the credentials back in an error.
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/filter$/,
        times: 10,
        respond: 500,
        responseBody: JSON.stringify({
          detail: `bad header Basic ${btoa(AUTH_STRING)} key ${API_KEY} auth ${AUTH_STRING}`,
        }),
      });
      const echoed = await deployThrough(proxy.apiUrl, ["plan", "--format", "json"], secrets);
      assertEquals(echoed.code, 1);
      assertStringIncludes(echoed.stderr, "500");
      assertNoSecrets(echoed);
      const wrong = await deployThrough(proxy.apiUrl, ["apply"], {
        PREFECT_API_KEY: API_KEY,
      });
      assertEquals(wrong.code, 1);
      assertEquals(
        wrong.stderr.trim().split("\n").at(-1)?.startsWith("error: The Prefect API"),
        true,
      );
      assertStringIncludes(wrong.stderr, "refused the credentials (401");
      assertNoSecrets(wrong);
    },
  );

  await t.step("bad URLs and a missing PREFECT_API_URL get one clear line", async () => {
    const errorLine = (r: CliResult) =>
      r.stderr.trim().split("\n").filter((l) => l.startsWith("error:"));
    const unset = await runDeploy(["plan"], { cwd: project.dir });
    assertEquals(unset.code, 1);
    assertEquals(errorLine(unset), [
      "error: PREFECT_API_URL is not set. Set it to your server's API, e.g. http://127.0.0.1:4200/api, or pass --api-url.",
    ]);
    const closed = `http://127.0.0.1:${freePort()}/api`;
    const refused = await deployThrough(closed, ["plan"]);
    assertEquals(refused.code, 1);
    assertEquals(errorLine(refused).length, 1);
    assertStringIncludes(
      refused.stderr,
      `Cannot reach the Prefect API at ${closed}: connection refused.`,
    );
    const waited = await deployThrough(closed, ["apply", "--wait", "1"]);
    assertEquals(waited.code, 1);
    assertStringIncludes(waited.stderr, "did not become healthy within 1 s (--wait).");
    const root = server.apiUrl.replace(/\/api$/, "");
    const noApi = await deployThrough(root, ["plan"]);
    assertEquals(noApi.code, 1);
    assertStringIncludes(noApi.stderr, `No Prefect API at ${root} (GET /admin/version: 404)`);
    // https:// against the real server, which speaks plain HTTP.
    const tls = server.apiUrl.replace(/^http:/, "https:");
    const handshake = await deployThrough(tls, ["plan"]);
    assertEquals(handshake.code, 1);
    assertEquals(errorLine(handshake), [
      `error: Cannot reach the Prefect API at ${tls}: the TLS handshake failed: the server does ` +
      "not speak TLS (is it http://?). Is the server running and PREFECT_API_URL right? " +
      "(--wait SECONDS waits for it to come up.)",
    ]);
    const flag = await runDeploy(["plan", "--api-url", "localhost:4200"], { cwd: project.dir });
    assertEquals(flag.code, 1);
    assertStringIncludes(
      flag.stderr,
      '--api-url must be an http:// or https:// URL, not "localhost:4200".',
    );
  });

  await t.step("a Prefect 2 server is refused before anything else", async () => {
    await using proxy = proxyAnsweringVersion(server.apiUrl, "2.20.1");
    const result = await deployThrough(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 1);
    assertStringIncludes(result.stderr, "runs Prefect 2.20.1; deploy.ts needs Prefect 3.");
    assertEquals(proxy.writes().length, 0);
  });

  await t.step("a Prefect 3 release older than 3.0.3 is refused in one line", async () => {
    await using proxy = proxyAnsweringVersion(server.apiUrl, "3.0.2");
    const result = await deployThrough(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr.trim().split("\n").filter((l) => l.startsWith("error:")), [
      `error: The server at ${proxy.apiUrl} runs Prefect 3.0.2; deploy.ts needs Prefect 3.0.3 ` +
      "or later (deployment concurrency options arrived in 3.0.3).",
    ]);
    assertEquals(proxy.writes().length, 0);
  });
});
