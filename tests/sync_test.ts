/**
 * plan and apply against a real Prefect server: creation, zero-write idempotency, field-level
 * updates that keep schedule IDs and other deployments' runs, ownership and prune, selection,
 * templating, pre-flight errors. One server for the whole file; steps share its state in order.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";
import { capabilitiesOf } from "../lib/prefect_client.ts";
import { fieldChanges } from "../deploy.ts";

const FLOWS = `from prefect import flow


@flow
def etl(limit: int = 1, mode: str = "full"):
    return limit


@flow(name="report")
def make_report(day: str = "today"):
    return day
`;

const ALPHA = `name: alpha
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    flow_name: etl
    tags: [team-data]
    parameters: {limit: 10}
    work_pool: {name: pool-a}
    schedules:
      - slug: nightly
        cron: "0 3 * * *"
        timezone: UTC
        active: true
  - name: hourly
    entrypoint: flows/etl.py:etl
    flow_name: etl
    parameters: {limit: 1, mode: "{{ $ETL_MODE }}"}
    work_pool: {name: pool-a}
    schedules:
      - interval: 3600
        anchor_date: "2026-01-01T00:00:00Z"
        timezone: UTC
        active: true
`;

const REPORT = `name: alpha
deployments:
  - name: daily
    entrypoint: flows/etl.py:make_report
    flow_name: report
    description: "Owned by {{ prefect.blocks.secret.report-owner }}"
    parameters: {day: "{{ prefect.variables.report_day }}"}
    work_pool: {name: pool-a}
    schedules:
      - cron: "0 7 * * *"
        timezone: Europe/Berlin
`;

type Json = Record<string, unknown>;

interface ServerDeployment {
  id: string;
  name: string;
  tags: string[];
  paused: boolean;
  parameters: Json;
  parameter_openapi_schema: { properties: Json };
  schedules: {
    id: string;
    slug?: string | null;
    active: boolean;
    schedule: Json;
    parameters?: Json;
  }[];
}

interface SyncJson {
  deployments: {
    flow: string;
    name: string;
    id: string | null;
    action: string;
    changes: { field: string; before: unknown; after: unknown }[];
    effects: string[];
    result?: string;
  }[];
  summary: Record<string, number>;
  requests: { read: number; write: number };
}

Deno.test("plan and apply against a real Prefect server", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  const capabilities = capabilitiesOf(server.version);
  // Prefect < 3.2 rejects schedule fields it does not have.
  const scheduleFields = capabilities.scheduleSlugs ? { parameters: {} } : {};
  await call("POST", "/work_pools/", { name: "pool-a", type: "process" });
  await call("POST", "/variables/", { name: "report_day", value: "monday" });
  const secretType = await call<{ id: string }>("GET", "/block_types/slug/secret");
  const [secretSchema] = await call<{ id: string }[]>("POST", "/block_schemas/filter", {
    block_schemas: { block_type_id: { any_: [secretType.id] } },
  });
  await call("POST", "/block_documents/", {
    name: "report-owner",
    block_type_id: secretType.id,
    block_schema_id: secretSchema.id,
    data: { value: "team-data" },
  });
  await using project = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/alpha.yaml": ALPHA,
    "prefect/report.yaml": REPORT,
  });
  const env = { PREFECT_API_URL: server.apiUrl, ETL_MODE: "incremental" };
  const deploy = (args: string[], extra: Record<string, string> = {}) =>
    runDeploy(args, { cwd: project.dir, env: { ...env, ...extra } });
  const json = (result: CliResult): SyncJson => {
    try {
      return JSON.parse(result.stdout);
    } catch {
      throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    }
  };
  const byName = (flow: string, name: string) =>
    call<ServerDeployment>("GET", `/deployments/name/${flow}/${name}`);
  const scheduledRuns = async (deploymentId: string) =>
    (await call<{ id: string }[]>("POST", "/flow_runs/filter", {
      deployments: { id: { any_: [deploymentId] } },
      flow_runs: { state: { type: { any_: ["SCHEDULED"] } } },
    })).map((r) => r.id).sort();

  await t.step("the version table agrees with the server's own OpenAPI schema", async () => {
    assertEquals(await call<string>("GET", "/admin/version"), server.version);
    const { components: { schemas } } = await call<
      { components: { schemas: Record<string, { properties?: Record<string, unknown> }> } }
    >("GET", "/openapi.json");
    const has = (model: string, field: string) => field in (schemas[model]?.properties ?? {});
    assertEquals(
      {
        scheduleSlugs: has("DeploymentScheduleCreate", "slug") &&
          has("DeploymentScheduleCreate", "parameters") &&
          has("DeploymentScheduleUpdate", "slug") && has("DeploymentSchedule", "slug"),
        patchesStepsAndSchema: has("DeploymentUpdate", "pull_steps") &&
          has("DeploymentUpdate", "parameter_openapi_schema"),
        concurrencyGracePeriod: has("ConcurrencyOptions", "grace_period_seconds"),
      },
      capabilities,
    );
  });

  await t.step("plan against an empty server lists three creates", async () => {
    const result = await deploy(["plan", "--detailed-exitcode"]);
    assertEquals(result.code, 2, result.stderr);
    assertStringIncludes(result.stdout, "+ create  etl/nightly");
    assertStringIncludes(result.stdout, "+ create  report/daily");
    assertStringIncludes(
      result.stdout,
      "Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged.",
    );
  });

  const ids: Record<string, string> = {};
  await t.step("apply creates them and prints the server's IDs", async () => {
    const result = await deploy(["apply"]);
    assertEquals(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assertEquals(lines.at(-1), "Apply: 3 created, 0 updated, 0 deleted, 0 unchanged.");
    for (const line of lines.slice(0, -1)) {
      const [key, id, outcome] = line.trim().split(/\s+/);
      assertEquals(outcome, "created");
      ids[key] = id;
    }
    assertEquals(Object.keys(ids).sort(), ["etl/hourly", "etl/nightly", "report/daily"]);
    const nightly = await byName("etl", "nightly");
    assertEquals(nightly.id, ids["etl/nightly"]);
    assertEquals(nightly.tags.sort(), ["managed-by:deploy.ts/alpha", "team-data"]);
    const hourly = await byName("etl", "hourly");
    assertEquals(hourly.parameters, { limit: 1, mode: "incremental" });
    if (capabilities.scheduleSlugs) {
      assertEquals(nightly.schedules.map((s) => s.slug), ["nightly"]);
      assertEquals(hourly.schedules.map((s) => s.slug), ["schedule-1"]);
    } else {
      assertEquals(nightly.schedules.map((s) => s.slug), [undefined]);
      assertEquals(nightly.schedules.map((s) => s.schedule.cron), ["0 3 * * *"]);
    }
    const daily = await byName("report", "daily");
    assertEquals(daily.parameters, { day: "monday" });
    assertEquals((daily as unknown as { description: string }).description, "Owned by team-data");
  });

  await t.step("a second apply makes zero writes and plan exits 0", async () => {
    const before = await byName("etl", "nightly");
    const applied = json(await deploy(["apply", "--format", "json"]));
    assertEquals(applied.requests.write, 0);
    assertEquals(applied.summary, {
      create: 0,
      update: 0,
      adopt: 0,
      delete: 0,
      unchanged: 3,
      failed: 0,
    });
    // Version check, flows, deployments by ownership mark (every declared one is among them),
    // automations (a removed trigger is an automation to delete), the variable and the block the
    // templates use.
    assert(applied.requests.read <= 6, `reads: ${applied.requests.read}`);
    const plan = await deploy(["plan", "--detailed-exitcode", "--wait", "5"]);
    assertEquals(plan.code, 0, plan.stdout + plan.stderr);
    assertStringIncludes(plan.stdout, "No changes");
    const after = await byName("etl", "nightly");
    assertEquals(after.schedules.map((s) => s.id), before.schedules.map((s) => s.id));
  });

  await t.step("a no-op apply is proven write-free through a recording proxy", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply"], { PREFECT_API_URL: proxy.apiUrl });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(proxy.writes().length, 0);
    assert(proxy.requests.length <= 6, `${proxy.requests.length} requests`);
    // Listing deployments is the server's slowest answer: once, with the small reads sent just
    // before it, and nothing asked after it but what the templates use (known once checked).
    const paths = proxy.requests.map((r) => r.path).join(" ");
    const listings = proxy.requests.filter((r) => r.path === "/deployments/filter");
    assertEquals(listings.length, 1, paths);
    const small = proxy.requests.filter((r) => /^\/(flows|automations)\/filter$/.test(r.path));
    assertEquals(small.length, 2, paths);
    for (const r of small) assert(r.at <= listings[0].at, `${r.path} was sent after the listing`);
    const after = proxy.requests.filter((r) => r.at >= listings[0].answered!).map((r) => r.path);
    assertEquals(after.sort(), [
      "/block_types/slug/secret/block_documents/name/report-owner?include_secrets=true",
      "/variables/filter",
    ]);
  });

  await t.step("changing a cron changes exactly that schedule and keeps its ID", async () => {
    const before = await byName("etl", "nightly");
    await Deno.writeTextFile(
      `${project.dir}/prefect/alpha.yaml`,
      ALPHA.replace('cron: "0 3 * * *"', 'cron: "30 3 * * *"'),
    );
    const plan = json(await deploy(["plan", "--format", "json"]));
    const changed = plan.deployments.filter((d) => d.action !== "noop");
    assertEquals(changed.map((d) => `${d.flow}/${d.name}`), ["etl/nightly"]);
    // Field by field: only the cron of that schedule changed.
    assertEquals(changed[0].changes, [{
      field: "schedules[nightly].schedule.cron",
      before: "0 3 * * *",
      after: "30 3 * * *",
    }]);
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply"], { PREFECT_API_URL: proxy.apiUrl });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), [
      `PATCH /deployments/${before.id}/schedules/${before.schedules[0].id}`,
    ]);
    // The write happened under the lock: taken first, released last.
    const lock = proxy.lockRequests();
    assertEquals(lock[0].method, "POST");
    assertEquals(lock.at(-1)!.method, "DELETE");
    const write = proxy.requests.find((r) =>
      r.method === "PATCH" && r.path.includes("/schedules/")
    )!;
    assert(lock[0].at < write.at && write.at < lock.at(-1)!.at, "the PATCH ran under the lock");
    const after = await byName("etl", "nightly");
    assertEquals(after.schedules[0].id, before.schedules[0].id);
    assertEquals(after.schedules[0].schedule.cron, "30 3 * * *");
  });

  await t.step("changing one parameter PATCHes only parameters", async () => {
    await Deno.writeTextFile(
      `${project.dir}/prefect/alpha.yaml`,
      ALPHA.replace('cron: "0 3 * * *"', 'cron: "30 3 * * *"').replace(
        "{limit: 10}",
        "{limit: 20}",
      ),
    );
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply"], { PREFECT_API_URL: proxy.apiUrl });
    assertEquals(result.code, 0, result.stderr);
    assertMatch(result.stdout, /etl\/nightly\s+\S+\s+updated/);
    const writes = proxy.syncWrites();
    assertEquals(writes.map((w) => `${w.method} ${w.path}`), [
      `PATCH /deployments/${ids["etl/nightly"]}`,
    ]);
    assertEquals(writes[0].body, { parameters: { limit: 20 } });
    assertMatch(result.stderr, /\n\d+ requests \(\d+ reads, 1 write\) in \d/);
  });

  await t.step("updating deployment A keeps deployment B's scheduled runs", async () => {
    const nightly = ids["etl/nightly"];
    const hourly = ids["etl/hourly"];
    await call("POST", `/deployments/${nightly}/schedule`, {});
    await call("POST", `/deployments/${hourly}/schedule`, {});
    const runsA = await scheduledRuns(nightly);
    const runsB = await scheduledRuns(hourly);
    assert(runsA.length > 0 && runsB.length > 0, "the scheduler endpoint made runs");
    await Deno.writeTextFile(
      `${project.dir}/prefect/alpha.yaml`,
      ALPHA.replace('cron: "0 3 * * *"', 'cron: "30 3 * * *"').replace(
        "{limit: 10}",
        "{limit: 30}",
      ),
    );
    const result = await deploy(["apply"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await scheduledRuns(hourly), runsB);
    // Prefect's side effect the plan warns about, confirmed: A's future runs went.
    assertEquals(await scheduledRuns(nightly), []);
  });

  await t.step("paused and an unstated schedule `active` are left as the UI set them", async () => {
    const daily = await byName("report", "daily");
    await call("PATCH", `/deployments/${daily.id}`, { paused: true });
    await call("PATCH", `/deployments/${daily.id}/schedules/${daily.schedules[0].id}`, {
      active: false,
      ...scheduleFields,
    });
    const plan = await deploy(["plan", "--detailed-exitcode"]);
    assertEquals(plan.code, 0, plan.stdout);
    // Stated values win: nightly says `active: true`.
    const nightly = await byName("etl", "nightly");
    await call("PATCH", `/deployments/${nightly.id}/schedules/${nightly.schedules[0].id}`, {
      active: false,
      ...scheduleFields,
    });
    const changed = json(await deploy(["plan", "--format", "json"])).deployments
      .filter((d) => d.action === "update");
    assertEquals(changed.map((d) => d.changes.map((c) => c.field)), [[
      "schedules[nightly].active",
    ]]);
    assertEquals((await deploy(["apply"])).code, 0);
    assertEquals((await byName("etl", "nightly")).schedules[0].active, true);
    assertEquals((await byName("report", "daily")).paused, true);
  });

  await t.step(
    "a changed flow signature updates the parameter schema and keeps the deployment's ID",
    async () => {
      const before = await byName("report", "daily");
      await Deno.writeTextFile(
        `${project.dir}/flows/etl.py`,
        FLOWS.replace('day: str = "today"', 'day: str = "today", lang: str = "en"'),
      );
      const plan = json(await deploy(["plan", "--format", "json"]));
      const changed = plan.deployments.filter((d) => d.action !== "noop");
      // The plan names the new parameter; the PATCH (or re-send) carries the whole schema.
      assertEquals(changed.map((d) => d.changes.map((c) => c.field)), [[
        "parameter_openapi_schema.properties.lang",
      ]]);
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await deploy(["apply"], { PREFECT_API_URL: proxy.apiUrl });
      assertEquals(result.code, 0, result.stderr);
      const writes = proxy.syncWrites();
      const after = await byName("report", "daily");
      assertEquals(after.id, before.id);
      assert("lang" in after.parameter_openapi_schema.properties, "the new parameter is there");
      if (capabilities.patchesStepsAndSchema) {
        assertEquals(writes.map((w) => `${w.method} ${w.path}`), [
          `PATCH /deployments/${before.id}`,
        ]);
        assertEquals(Object.keys(writes[0].body as Json), ["parameter_openapi_schema"]);
        assertEquals(after.schedules.map((s) => s.id), before.schedules.map((s) => s.id));
      } else {
        // PATCH does not take the field before Prefect 3.2: the deployment is sent whole, and
        // the plan said its schedules would get new IDs.
        assertMatch(changed[0].effects.join(" "), /cannot PATCH parameter_openapi_schema/);
        assertEquals(writes.map((w) => `${w.method} ${w.path}`), ["POST /deployments/"]);
        assertEquals(after.schedules.length, 1);
      }
      // What the UI set and the manifest leaves unstated survives either way.
      assertEquals(after.paused, true);
      assertEquals(after.schedules.map((s) => s.active), [false]);
      assertEquals(after.schedules[0].schedule.cron, "0 7 * * *");
      const again = await deploy(["plan", "--detailed-exitcode"]);
      assertEquals(again.code, 0, again.stdout + again.stderr);
    },
  );

  await t.step("--flow and -n select deployments; a pattern matching nothing fails", async () => {
    const byFlow = json(await deploy(["plan", "--flow", "report", "--format", "json"]));
    assertEquals(byFlow.deployments.map((d) => d.name), ["daily"]);
    const byName = json(await deploy(["plan", "-n", "etl/night*", "--format", "json"]));
    assertEquals(byName.deployments.map((d) => d.name), ["nightly"]);
    const none = await deploy(["plan", "-n", "nope"]);
    assertEquals(none.code, 1);
    assertStringIncludes(none.stderr, 'No deployment in the manifests matches --name "nope".');
  });

  await t.step(
    "a missing environment variable, Prefect variable or work pool stops apply before any write",
    async () => {
      await Deno.writeTextFile(
        `${project.dir}/prefect/report.yaml`,
        REPORT.replace("report_day", "missing_day").replace("pool-a", "pool-z"),
      );
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await runDeploy(["apply"], {
        cwd: project.dir,
        env: { PREFECT_API_URL: proxy.apiUrl },
      });
      assertEquals(result.code, 1);
      assertEquals(proxy.writes().length, 0);
      assertMatch(
        result.stderr,
        /prefect\/alpha\.yaml:\d+:\d+: error: Environment variable "ETL_MODE" is not set/,
      );
      assertMatch(
        result.stderr,
        /prefect\/report\.yaml:7:\d+: error: Prefect variable "missing_day" does not exist/,
      );
      assertMatch(
        result.stderr,
        /prefect\/report\.yaml:8:\d+: error: Work pool "pool-z" does not exist/,
      );
      assertEquals(result.stdout, "");
      await Deno.writeTextFile(`${project.dir}/prefect/report.yaml`, REPORT);
    },
  );

  await t.step("another project's deployments are never touched by --prune", async () => {
    await using other = await tempProject({
      "flows/etl.py": FLOWS,
      "prefect/other.yaml": `name: beta
deployments:
  - name: weekly
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool-a}
`,
    });
    const result = await runDeploy(["apply"], { cwd: other.dir, env });
    assertEquals(result.code, 0, result.stderr);
  });

  await t.step(
    "--prune needs --yes without a terminal and deletes only this project's leftovers",
    async () => {
      await Deno.remove(`${project.dir}/prefect/report.yaml`);
      const plan = await deploy(["plan", "--prune"]);
      assertStringIncludes(plan.stdout, "- delete  report/daily");
      assertStringIncludes(
        plan.stdout,
        "Plan: 0 to create, 0 to update, 1 to delete, 2 unchanged.",
      );
      const refused = await deploy(["apply", "--prune"]);
      assertEquals(refused.code, 1);
      assertStringIncludes(refused.stderr, "pass --yes to confirm");
      await byName("report", "daily"); // still there
      const pruned = await deploy(["apply", "--prune", "--yes"]);
      assertEquals(pruned.code, 0, pruned.stderr);
      assertMatch(pruned.stdout, /report\/daily\s+\S+\s+deleted/);
      const left = await call<{ name: string }[]>("POST", "/deployments/filter", {});
      assertEquals(left.map((d) => d.name).sort(), ["hourly", "nightly", "weekly"]);
    },
  );

  await t.step("the compiled binary's permissions are enough for plan and apply", async () => {
    await using shipped = await tempProject({
      "flows/etl.py": FLOWS,
      "prefect/shipped.yaml": `name: shipped
deployments:
  - name: release
    entrypoint: flows/etl.py:etl
    parameters: {mode: "{{ $DEPLOY_MODE }}"}
    work_pool: {name: pool-a}
`,
    });
    const asBinary = (args: string[], extra: Record<string, string> = {}) =>
      runDeploy(args, {
        cwd: shipped.dir,
        env: { PREFECT_API_URL: server.apiUrl, DEPLOY_MODE: "full", ...extra },
        permissions: BINARY_PERMISSIONS,
      });
    const applied = await asBinary(["apply", "--wait", "5"]);
    assertEquals(applied.code, 0, applied.stderr);
    assertMatch(applied.stdout, /etl\/release\s+\S+\s+created/);
    assertEquals(
      applied.stdout.trim().split("\n").at(-1),
      "Apply: 1 created, 0 updated, 0 deleted, 0 unchanged.",
    );
    const plan = await asBinary(["plan", "--detailed-exitcode"]);
    assertEquals(plan.code, 0, plan.stdout + plan.stderr);
    await Deno.writeTextFile(
      `${shipped.dir}/prefect/shipped.yaml`,
      (await Deno.readTextFile(`${shipped.dir}/prefect/shipped.yaml`)).replace(
        "DEPLOY_MODE",
        "MODE",
      ),
    );
    const forbidden = await asBinary(["plan"], { MODE: "full" });
    assertEquals(forbidden.code, 1);
    assertMatch(
      forbidden.stderr,
      /shipped\.yaml:5:\d+: error: Environment variable "MODE" may not be read/,
    );
  });

  await t.step("--prune refuses when the manifests declare no deployment", async () => {
    await using empty = await tempProject({
      "prefect/none.yaml": "name: alpha\ndeployments: []\n",
    });
    const before = await call<unknown[]>("POST", "/deployments/filter", {});
    const result = await runDeploy(["apply", "--prune", "--yes"], { cwd: empty.dir, env });
    assertEquals(result.code, 1);
    assertStringIncludes(result.stderr, "--prune refuses to run");
    const after = await call<unknown[]>("POST", "/deployments/filter", {});
    assertEquals(after.length, before.length);
  });

  await t.step(
    "what the server's release cannot store is an error at its place, before any write",
    async () => {
      await using gamma = await tempProject({
        "flows/capable.py": "from prefect import flow\n\n\n@flow\ndef capable(limit: int = 1):\n" +
          "    return limit\n",
        "prefect/gamma.yaml": `name: gamma
deployments:
  - name: capable
    entrypoint: flows/capable.py:capable
    work_pool: {name: pool-a}
    concurrency_limit: {limit: 2, collision_strategy: CANCEL_NEW, grace_period_seconds: 120}
    schedules:
      - cron: "0 5 * * *"
        timezone: UTC
        active: false
        parameters: {limit: 7}
`,
      });
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await runDeploy(["apply"], {
        cwd: gamma.dir,
        env: { PREFECT_API_URL: proxy.apiUrl },
      });
      const expected = [
        ...capabilities.concurrencyGracePeriod ? [] : [
          `prefect/gamma.yaml:6:67: error: Prefect ${server.version} has no concurrency grace ` +
          "period (it arrived in 3.6.6).",
        ],
        ...capabilities.scheduleSlugs ? [] : [
          `prefect/gamma.yaml:11:9: error: Prefect ${server.version} has no schedule parameters`,
        ],
      ];
      if (expected.length) {
        assertEquals(result.code, 1, result.stdout);
        for (const line of expected) assertStringIncludes(result.stderr, line);
        assertEquals(proxy.writes(), []);
        assertEquals(result.stdout, "");
        const flows = await call<unknown[]>("POST", "/flows/filter", {
          flows: { name: { any_: ["capable"] } },
        });
        assertEquals(flows, [], "not even the flow was created");
      } else {
        assertEquals(result.code, 0, result.stderr);
        const capable = await call<
          ServerDeployment & { concurrency_options: Json }
        >("GET", "/deployments/name/capable/capable");
        assertEquals(capable.schedules.map((s) => s.parameters), [{ limit: 7 }]);
        assertEquals(capable.concurrency_options.grace_period_seconds, 120);
      }
    },
  );

  await t.step(
    "a flow its decorator names otherwise than its function is read by that name",
    async () => {
      // The reads that start before the checks guess "make-report" from the entrypoint; the
      // checks read the decorator's "renamed-report", which is then read on its own.
      await using delta = await tempProject({
        "flows/etl.py": FLOWS.replace('@flow(name="report")', '@flow(name="renamed-report")'),
        "prefect/delta.yaml": `name: delta
deployments:
  - name: daily
    entrypoint: flows/etl.py:make_report
    work_pool: {name: pool-a}
`,
      });
      const first = await runDeploy(["apply"], { cwd: delta.dir, env });
      assertEquals(first.code, 0, first.stderr);
      await byName("renamed-report", "daily");
      await using proxy = startFaultProxy(server.apiUrl);
      const again = json(
        await runDeploy(["apply", "--format", "json"], {
          cwd: delta.dir,
          env: { PREFECT_API_URL: proxy.apiUrl },
        }),
      );
      assertEquals(again.summary.unchanged, 1);
      assertEquals(again.requests.write, 0);
      const flowReads = proxy.requests.filter((r) => r.path === "/flows/filter")
        .map((r) => (r.body as { flows: { name: { any_: string[] } } }).flows.name.any_);
      assertEquals(flowReads, [["make-report"], ["renamed-report"]]);
    },
  );
});

Deno.test("plan diffs nested values field by field, lists whole", () => {
  assertEquals(
    fieldChanges(
      "parameters",
      { batch_size: 500, keep: 1, env: { A: "1", B: "2" }, list: [1] },
      { batch_size: 600, keep: 1, env: { A: "1", B: "3", "prefect.x": 1 }, list: [1, 2] },
    ),
    [
      { field: "parameters.batch_size", before: 500, after: 600 },
      { field: "parameters.env.B", before: "2", after: "3" },
      { field: 'parameters.env["prefect.x"]', before: undefined, after: 1 },
      { field: "parameters.list", before: [1], after: [1, 2] },
    ],
  );
  assertEquals(fieldChanges("description", null, "x"), [
    { field: "description", before: null, after: "x" },
  ]);
  assertEquals(fieldChanges("job_variables", {}, { env: { X: "1" } }), [
    { field: "job_variables.env", before: undefined, after: { X: "1" } },
  ]);
});
