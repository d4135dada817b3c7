/**
 * A hostile world, against a real Prefect server with the fault proxy in front where the server
 * must misbehave: writes that land only in part, answers lost after the server acted, a slow
 * server that times out creates, bodies that are not what the endpoint returns, paging that
 * ignores its offset, a server that dies mid-apply, redirects, templated work-pool names, and
 * integers JSON numbers cannot carry. Each outcome is reported as what the server then holds.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";

const FLOW = `from prefect import flow


@flow
def job(n: int = 1, label: str = ""):
    return n
`;

interface Spec {
  name: string;
  description?: string;
  cron?: string;
  pool?: string;
  maxRuns?: number;
  parameters?: string;
}

function manifest(specs: Spec[]): string {
  return `name: hostile
deployments:
${
    specs.map((s) =>
      `  - name: ${s.name}
    entrypoint: flows/job.py:job
    description: "${s.description ?? "first"}"
    parameters: ${s.parameters ?? "{n: 1}"}
    work_pool: {name: "${s.pool ?? "pool-h"}"}
    schedules:
      - slug: daily
        cron: "${s.cron ?? "0 1 * * *"}"
        timezone: UTC
        active: true${s.maxRuns ? `\n        max_scheduled_runs: ${s.maxRuns}` : ""}
`
    ).join("")
  }`;
}

interface ServerDeployment {
  id: string;
  name: string;
  description: string;
  schedules: { id: string; schedule: { cron: string } }[];
}

Deno.test("a hostile world: partial writes, lost answers, bad bodies, a dying server", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-h", type: "process" });
  await using project = await tempProject({ "flows/job.py": FLOW, "prefect/jobs.yaml": "" });
  const write = (specs: Spec[]) =>
    Deno.writeTextFile(`${project.dir}/prefect/jobs.yaml`, manifest(specs));
  const deploy = (apiUrl: string, args: string[], env: Record<string, string> = {}) =>
    runDeploy(args, { cwd: project.dir, env: { PREFECT_API_URL: apiUrl, ...env } });
  const byName = (name: string) => call<ServerDeployment>("GET", `/deployments/name/job/${name}`);
  const names = async () =>
    (await call<{ name: string }[]>("POST", "/deployments/filter", {})).map((d) => d.name).sort();
  const converges = async () => {
    const rerun = await deploy(server.apiUrl, ["apply"]);
    assertEquals(rerun.code, 0, rerun.stdout + rerun.stderr);
    const plan = await deploy(server.apiUrl, ["plan", "--detailed-exitcode"]);
    assertEquals(plan.code, 0, plan.stdout + plan.stderr);
  };
  const lastLine = (r: CliResult) => r.stdout.trim().split("\n").at(-1);

  await write([{ name: "a" }]);
  assertEquals((await deploy(server.apiUrl, ["apply"])).code, 0);

  await t.step("a PATCH that lands while its schedule write fails: updated partly", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({
      method: "PATCH",
      path: /^\/deployments\/[0-9a-f-]+\/schedules\/[0-9a-f-]+$/,
      times: 100,
      respond: 422,
      responseBody: JSON.stringify({ detail: "schedule refused" }),
    });
    await write([{ name: "a", description: "second", cron: "0 2 * * *" }]);
    const result = await deploy(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 1, result.stdout + result.stderr);
    assertMatch(
      result.stdout,
      /job\/a\s+[0-9a-f-]{36}\s+failed \(updated partly: schedules not applied\): PATCH \/deployments\/\S+\/schedules\/\S+ failed: 422 schedule refused/,
    );
    const a = await byName("a");
    assertEquals(a.description, "second");
    assertEquals(a.schedules[0].schedule.cron, "0 1 * * *");
    await converges();
    assertEquals((await byName("a")).schedules[0].schedule.cron, "0 2 * * *");
  });

  await t.step("a write the server applied but answered 500 is reported as applied", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({
      method: "PATCH",
      path: /^\/deployments\/[0-9a-f-]+$/,
      times: 1,
      respond: "forward",
      status: 500,
    });
    await write([{ name: "a", description: "third", cron: "0 2 * * *" }]);
    const result = await deploy(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 0, result.stdout + result.stderr);
    assertMatch(result.stdout, /job\/a\s+\S+\s+updated/);
    assertEquals((await byName("a")).description, "third");
  });

  await t.step("nothing of an update applied: update not applied", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "PATCH", times: 100, respond: 422 });
    await write([{ name: "a", description: "fourth", cron: "0 2 * * *" }]);
    const result = await deploy(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 1);
    assertMatch(result.stdout, /job\/a\s+\S+\s+failed \(update not applied\): PATCH/);
    assertEquals((await byName("a")).description, "third");
    await converges();
  });

  await t.step("a create whose schedules fail after it: created partly, with its ID", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({
      method: "POST",
      path: /^\/deployments\/[0-9a-f-]+\/schedules$/,
      times: 100,
      respond: 422,
    });
    await write([{ name: "a", description: "fourth", cron: "0 2 * * *" }, {
      name: "m",
      maxRuns: 5,
    }]);
    const result = await deploy(proxy.apiUrl, ["apply"]);
    assertEquals(result.code, 1);
    const [, id] = result.stdout.match(
      /job\/m\s+([0-9a-f-]{36})\s+failed \(created partly: schedules not applied\)/,
    ) ?? [];
    assert(id, result.stdout);
    const m = await byName("m");
    assertEquals(m.id, id);
    assertEquals(m.schedules, []);
    await converges();
    assertEquals((await byName("m")).schedules.length, 1);
  });

  await t.step(
    "a timed-out create is looked up before each resend and reported as it is",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      // The server gets each create 8 s late; the client gives up on each after 1 s.
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/$/,
        body: /"name":"slow"/,
        times: 100,
        respond: "forward",
        delayMs: 8000,
      });
      const specs = [{ name: "a", description: "fourth", cron: "0 2 * * *" }, {
        name: "m",
        maxRuns: 5,
      }];
      await write([...specs, { name: "slow" }]);
      const result = await deploy(proxy.apiUrl, ["apply", "-n", "slow"], {
        PREFECT_API_REQUEST_TIMEOUT: "1",
      });
      assertEquals(result.code, 1, result.stdout + result.stderr);
      assertStringIncludes(
        result.stdout,
        "failed (create not applied yet: it timed out, and the server may still finish it)",
      );
      const trail = proxy.requests
        .filter((r) => r.path === "/deployments/" || r.path === "/deployments/name/job/slow")
        .map((r) => r.method).join(" ");
      // Three attempts, each followed by a lookup (a slow lookup may be retried), the last one
      // being the re-read that found nothing yet.
      assertMatch(trail, /^POST( GET)+ POST( GET)+ POST( GET)+$/);
      // The server finishes what it was sent: one deployment, found by the next run.
      for (let waited = 0; !(await names()).includes("slow"); waited += 500) {
        assert(waited < 30_000, "the slow create never landed");
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await new Promise((resolve) => setTimeout(resolve, 3000)); // the resent ones land too
      await converges();
      assertEquals((await names()).filter((n) => n === "slow").length, 1);
    },
  );

  await t.step("a 2xx that is not the endpoint's JSON stops the run, nothing written", async () => {
    const bodies: [RegExp, string, string, RegExp][] = [
      [
        /^\/deployments\/filter$/,
        "<html><body>Sign in</body></html>",
        "text/html",
        /POST \/deployments\/filter answered 200 with a body that is not JSON: "<html><body>Sign in<\/body><\/html>"/,
      ],
      [
        /^\/deployments\/filter$/,
        '[{"id": "x", "name": ',
        "application/json",
        /POST \/deployments\/filter answered 200 with a body that is not JSON/,
      ],
      [
        /^\/deployments\/filter$/,
        '{"results": []}',
        "application/json",
        /POST \/deployments\/filter answered 200 with a body that is not a list of deployments/,
      ],
      [
        /^\/work_pools\/filter$/,
        '[{"nothing": true}]',
        "application/json",
        /POST \/work_pools\/filter answered 200 with a body that is not a list of work pools/,
      ],
    ];
    for (const [path, body, type, message] of bodies) {
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.rules.push({
        method: "POST",
        path,
        times: 100,
        respond: 200,
        responseBody: body,
        headers: { "content-type": type },
      });
      // Pools a deployment is already on are not read: name one none is on.
      const pool = path.source.includes("work_pools") ? "pool-no-one-uses" : undefined;
      await write([{ name: "a", description: "changed again", pool }]);
      const result = await deploy(proxy.apiUrl, ["apply"]);
      assertEquals(result.code, 1, body);
      assertMatch(result.stderr, message);
      assert(!result.stderr.includes("does not exist"), result.stderr);
      assertEquals(proxy.writes().length, 0, body);
    }
    await write([{ name: "a", description: "fourth", cron: "0 2 * * *" }, {
      name: "m",
      maxRuns: 5,
    }, { name: "slow" }]);
  });

  await t.step(
    "paging that ignores its offset is refused; paging past the count stops",
    async () => {
      const fakePage = (from: number) =>
        JSON.stringify(Array.from({ length: 200 }, (_, i) => ({
          id: `00000000-0000-4000-8000-${String(from + i).padStart(12, "0")}`,
          name: `fake-${from + i}`,
          flow_id: "00000000-0000-4000-8000-000000000000",
          paused: false,
          tags: [],
          schedules: [],
        })));
      await using repeating = startFaultProxy(server.apiUrl);
      // The listing by ownership mark, which every plan makes; the one by flow and name (for
      // declared deployments that listing lacks) is a short real one.
      const byMark = /"tags"/;
      const listings = (proxy: { requests: { path: string; body: unknown }[] }) =>
        proxy.requests.filter((r) =>
          r.path === "/deployments/filter" && byMark.test(JSON.stringify(r.body))
        ).length;
      repeating.rules.push({
        method: "POST",
        path: /^\/deployments\/filter$/,
        body: byMark,
        times: 100,
        respond: 200,
        responseBody: fakePage(0),
      });
      const refused = await deploy(repeating.apiUrl, ["plan"]);
      assertEquals(refused.code, 1);
      assertMatch(
        refused.stderr,
        /POST \/deployments\/filter returned item \S+ again at offset 200/,
      );
      assertEquals(listings(repeating), 2);
      assertEquals(repeating.requests.filter((r) => r.path === "/deployments/count").length, 1);

      await using endless = startFaultProxy(server.apiUrl);
      endless.rules.push({
        method: "POST",
        path: /^\/deployments\/filter$/,
        body: byMark,
        times: 100,
        respond: 200,
        responseBody: ({ text }) => fakePage(JSON.parse(text).offset),
      });
      const bounded = await deploy(endless.apiUrl, ["plan"]);
      assertEquals(bounded.code, 0, bounded.stderr);
      // The real count is 3: one page past the first, then stop.
      assertEquals(listings(endless), 2);
    },
  );

  await t.step("templated work-pool names are resolved before the pool read", async () => {
    await call("POST", "/variables/", { name: "pool_name", value: "pool-h" });
    await write([
      { name: "a", description: "fourth", cron: "0 2 * * *", pool: "{{ $DEPLOY_POOL }}" },
      { name: "m", maxRuns: 5, pool: "{{ prefect.variables.pool_name }}" },
      { name: "slow" },
    ]);
    const ok = await deploy(server.apiUrl, ["plan", "--detailed-exitcode"], {
      DEPLOY_POOL: "pool-h",
    });
    assertEquals(ok.code, 0, ok.stdout + ok.stderr);
    const wrong = await deploy(server.apiUrl, ["plan"], { DEPLOY_POOL: "pool-nope" });
    assertEquals(wrong.code, 1);
    assertMatch(wrong.stderr, /jobs\.yaml:7:\d+: error: Work pool "pool-nope" does not exist/);
    await write([{ name: "a", description: "fourth", cron: "0 2 * * *" }, {
      name: "m",
      maxRuns: 5,
    }, { name: "slow" }]);
  });

  await t.step(
    "redirects: a read follows one within the origin, a write is never re-sent",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/filter$/,
        times: 1,
        respond: 307,
        headers: { location: new URL(`${proxy.apiUrl}/deployments/filter`).pathname },
      });
      const plan = await deploy(proxy.apiUrl, ["plan", "--detailed-exitcode"]);
      assertEquals(plan.code, 0, plan.stdout + plan.stderr);
      // One listing (by ownership mark: a no-op needs no other), asked twice for the redirect.
      assertEquals(proxy.requests.filter((r) => r.path === "/deployments/filter").length, 2);
      assertEquals(proxy.requests.filter((r) => r.status === 307).length, 1);

      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/$/,
        times: 100,
        respond: 307,
        headers: { location: new URL(`${proxy.apiUrl}/deployments/`).pathname },
      });
      await write([
        { name: "a", description: "fourth", cron: "0 2 * * *" },
        {
          name: "m",
          maxRuns: 5,
        },
        { name: "slow" },
        { name: "redirected" },
      ]);
      const apply = await deploy(proxy.apiUrl, ["apply"]);
      assertEquals(apply.code, 1);
      assertMatch(
        apply.stdout,
        /job\/redirected\s+-\s+failed \(create not applied\): POST \/deployments\/ was redirected \(307\) to \/api\/deployments\/; a write is never re-sent/,
      );
      assertEquals(proxy.writes().filter((r) => r.path === "/deployments/").length, 1);
      assert(!(await names()).includes("redirected"));
    },
  );

  await t.step(
    "an integer beyond 2^53 in a Prefect variable is an error, not a rounding",
    async () => {
      // Sent as raw JSON text: a JavaScript number could not even hold it.
      const response = await fetch(`${server.apiUrl}/variables/`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"name": "big_number", "value": 9007199254740993}',
      });
      assertEquals(response.status, 201, await response.text());
      await write([{ name: "a", parameters: '{n: "{{ prefect.variables.big_number }}"}' }]);
      const result = await deploy(server.apiUrl, ["plan"]);
      assertEquals(result.code, 1);
      assertMatch(
        result.stderr,
        /jobs\.yaml:6:\d+: error: Prefect variable "big_number" holds an integer beyond ±9007199254740991 .* \[integer-precision\]/,
      );
    },
  );

  await t.step(
    "the server dies mid-apply: no new writes, one summary of done and not done",
    async () => {
      const many = Array.from({ length: 30 }, (_, i) => ({ name: `bulk-${i}` }));
      await write(many);
      await using proxy = startFaultProxy(server.apiUrl);
      let created = 0;
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/$/,
        times: 3,
        respond: "forward",
        then: () => {
          if (++created === 3) proxy.close();
        },
      });
      const started = performance.now();
      const result = await deploy(proxy.apiUrl, ["apply", "--concurrency", "2"], {
        PREFECT_CLIENT_MAX_RETRIES: "2",
      });
      const seconds = (performance.now() - started) / 1000;
      assertEquals(result.code, 1, result.stdout + result.stderr);
      const summary = lastLine(result)!;
      const [, done, failed, skipped] = summary.match(
        /^Apply: (\d+) created, 0 updated, 0 deleted, \d+ unchanged, (\d+) failed, (\d+) not started \(the server stayed unreachable\)\.$/,
      ) ?? [];
      assert(done !== undefined, summary);
      assertEquals(Number(done) + Number(failed) + Number(skipped), 30, summary);
      assert(Number(skipped) >= 20, summary);
      assertEquals(
        result.stdout.match(/not started: the server is unreachable/g)?.length,
        Number(skipped),
      );
      // Three retries' backoff (about 3 s) for the writes in flight, not one budget per deployment.
      assert(seconds < 45, `took ${seconds.toFixed(0)} s`);
      const rerun = await deploy(server.apiUrl, ["apply"]);
      assertEquals(rerun.code, 0, rerun.stdout + rerun.stderr);
      assertEquals((await names()).filter((n) => n.startsWith("bulk-")).length, 30);
    },
  );
});
