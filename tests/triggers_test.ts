/**
 * Triggers against a real Prefect server with its triggers and event services on: an applied
 * trigger is an automation that runs its deployment when a matching event arrives; unchanged
 * triggers cost no write, an edited one is one PUT that keeps its ID, a removed one is deleted,
 * prune deletes a deleted deployment's automations; automations `prefect deploy` made from the
 * same file are adopted, not duplicated. One server for the whole file; steps share its state.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";

const FLOWS = `from prefect import flow


@flow
def etl(limit: int = 1, mode: str = "full"):
    return limit
`;

const TRIGGER = `    triggers:
      - match:
          prefect.resource.id: deploy-ts.test.*
        expect: [deploy-ts.test.ping]
        parameters:
          limit: "{{ event.payload.limit }}"
          mode: "{{ event.resource.id }}"
`;

const manifest = (triggers = TRIGGER, deployment = "on-ping") =>
  `name: gamma
deployments:
  - name: ${deployment}
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool-t}
${triggers}`;

type Json = Record<string, unknown>;

interface Automation {
  id: string;
  name: string;
  enabled: boolean;
  tags: string[];
  trigger: { expect: string[]; [key: string]: unknown };
  actions: { type: string; deployment_id: string; parameters: Record<string, unknown> | null }[];
}

interface SyncJson {
  deployments: {
    flow: string;
    name: string;
    id: string | null;
    action: string;
    automations: {
      name: string;
      id: string | null;
      action: string;
      changes: { field: string; before: unknown; after: unknown }[];
    }[];
  }[];
  requests: { read: number; write: number };
}

const json = (result: CliResult): SyncJson => {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
};

Deno.test("triggers become automations that run their deployment, synced in place", async (t) => {
  await using server = await startPrefectServer({
    env: {
      PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: "true",
      PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: "true",
    },
  });
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-t", type: "process" });
  await using project = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/gamma.yaml": manifest(),
  });
  const write = (text: string) => Deno.writeTextFile(`${project.dir}/prefect/gamma.yaml`, text);
  const deploy = (args: string[], apiUrl = server.apiUrl) =>
    runDeploy(args, { cwd: project.dir, env: { PREFECT_API_URL: apiUrl } });
  const automations = () => call<Automation[]>("POST", "/automations/filter", {});
  const deploymentId = async () =>
    (await call<{ id: string }>("GET", "/deployments/name/etl/on-ping")).id;
  let automationId = "";

  await t.step("plan shows the automation under its deployment", async () => {
    const plan = await deploy(["plan"]);
    assertEquals(plan.code, 0, plan.stderr);
    assertStringIncludes(
      plan.stdout,
      "+ create  etl/on-ping\n      + automation on-ping__automation_1",
    );
  });

  await t.step(
    "apply creates the automation prefect deploy would, owned by the deployment",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await deploy(["apply"], proxy.apiUrl);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), [
        "POST /flows/",
        "POST /deployments/",
        "POST /automations/",
      ]);
      const id = await deploymentId();
      const [automation] = await automations();
      automationId = automation.id;
      assertMatch(
        result.stdout,
        new RegExp(`automation on-ping__automation_1  ${automationId}  created`),
      );
      assertEquals(automation.name, "on-ping__automation_1");
      assertEquals(automation.tags, ["managed-by:deploy.ts/gamma"]);
      assertEquals(automation.actions.map((a) => [a.type, a.deployment_id]), [[
        "run-deployment",
        id,
      ]]);
      const sent = proxy.requests.find((r) => r.path === "/automations/")!.body as Json;
      assertEquals(sent.owner_resource, `prefect.deployment.${id}`);
    },
  );

  await t.step(
    "a matching event starts a run of the deployment with the trigger's parameters",
    async () => {
      const id = await deploymentId();
      await call("POST", "/events", [{
        id: crypto.randomUUID(),
        occurred: new Date().toISOString(),
        event: "deploy-ts.test.ping",
        resource: { "prefect.resource.id": "deploy-ts.test.one" },
        payload: { limit: 7 },
      }]);
      let runs: { parameters: Record<string, unknown> }[] = [];
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && !runs.length;) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        runs = await call("POST", "/flow_runs/filter", { deployments: { id: { any_: [id] } } });
      }
      assertEquals(runs.map((r) => r.parameters), [{ limit: 7, mode: "deploy-ts.test.one" }]);
    },
  );

  await t.step("a second apply writes nothing; plan exits 0", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    const result = json(await deploy(["apply", "--format", "json"], proxy.apiUrl));
    assertEquals(proxy.syncWrites().length, 0);
    assertEquals(result.requests.write, 0);
    assert(result.requests.read <= 5, `reads: ${result.requests.read}`);
    assertEquals(result.deployments[0].automations.map((a) => [a.action, a.id]), [[
      "noop",
      automationId,
    ]]);
    assertEquals((await deploy(["plan", "--detailed-exitcode"])).code, 0);
  });

  await t.step(
    "an automation switched off in the UI stays off unless the manifest says; then one PATCH",
    async () => {
      await call("PATCH", `/automations/${automationId}`, { enabled: false });
      const plan = await deploy(["plan", "--detailed-exitcode"]);
      assertEquals(plan.code, 0, plan.stdout);
      await write(manifest(TRIGGER.replace("- match", "- enabled: true\n        match")));
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await deploy(["apply"], proxy.apiUrl);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(
        proxy.syncWrites().map((w) => `${w.method} ${w.path} ${JSON.stringify(w.body)}`),
        [
          `PATCH /automations/${automationId} {"enabled":true}`,
        ],
      );
      assertEquals((await automations())[0].enabled, true);
      await write(manifest());
    },
  );

  await t.step("editing expect is one PUT of that automation, which keeps its ID", async () => {
    await write(
      manifest(
        TRIGGER.replace("[deploy-ts.test.ping]", "[deploy-ts.test.ping, deploy-ts.test.pong]"),
      ),
    );
    const plan = json(await deploy(["plan", "--format", "json"]));
    assertEquals(plan.deployments[0].action, "update");
    assertEquals(plan.deployments[0].automations[0].changes, [{
      field: "expect",
      before: ["deploy-ts.test.ping"],
      after: ["deploy-ts.test.ping", "deploy-ts.test.pong"],
    }]);
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply"], proxy.apiUrl);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), [
      `PUT /automations/${automationId}`,
    ]);
    const [automation] = await automations();
    assertEquals(automation.id, automationId);
    assertEquals(automation.trigger.expect.sort(), ["deploy-ts.test.ping", "deploy-ts.test.pong"]);
  });

  await t.step("an overlay switches the triggers off in its environment", async () => {
    await Deno.mkdir(`${project.dir}/prefect/environments`, { recursive: true });
    await Deno.writeTextFile(
      `${project.dir}/prefect/environments/dev.yaml`,
      "defaults:\n  name_prefix: dev-\n  triggers: {enabled: false}\n",
    );
    const result = await deploy(["apply", "--env", "dev"]);
    assertEquals(result.code, 0, result.stderr);
    const dev = (await automations()).find((a) => a.name === "dev-on-ping__automation_1");
    assertEquals(dev?.enabled, false);
    assertEquals((await automations()).find((a) => a.id === automationId)?.enabled, true);
  });

  await t.step("a trigger removed from the manifest is deleted", async () => {
    await write(manifest(""));
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply"], proxy.apiUrl);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), [
      `DELETE /automations/${automationId}`,
    ]);
    assertEquals((await automations()).map((a) => a.name), ["dev-on-ping__automation_1"]);
  });

  await t.step("prune deletes a deleted deployment's automations with it", async () => {
    await write(manifest());
    assertEquals((await deploy(["apply"])).code, 0);
    const id = await deploymentId();
    const [made] = (await automations()).filter((a) => a.actions[0].deployment_id === id);
    await write(manifest(TRIGGER, "other"));
    const plan = await deploy(["plan", "--prune"]);
    assertStringIncludes(plan.stdout, `- delete  etl/on-ping\n`);
    assertStringIncludes(plan.stdout, `      - automation on-ping__automation_1\n`);
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await deploy(["apply", "--prune", "--yes"], proxy.apiUrl);
    assertEquals(result.code, 0, result.stderr);
    const writes = proxy.syncWrites().map((w) => `${w.method} ${w.path}`);
    assert(writes.includes(`DELETE /automations/${made.id}`), writes.join("\n"));
    assert(writes.includes(`DELETE /deployments/${id}`), writes.join("\n"));
    const left = await automations();
    assert(!left.some((a) => a.actions[0].deployment_id === id), JSON.stringify(left));
    // Deployments of other environments are left to the ownership rules (issue 9).
    assert(left.some((a) => a.name === "other__automation_1"), JSON.stringify(left));
  });

  await t.step("a create whose connection dropped is looked up, not sent twice", async () => {
    const second = TRIGGER.replace("    triggers:\n", "").replace(
      "- match",
      "- name: second\n        match",
    );
    await write(manifest(TRIGGER + second, "other"));
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "POST", path: /^\/automations\/$/, times: 1, respond: "drop" });
    const result = await deploy(["apply"], proxy.apiUrl);
    assertEquals(result.code, 0, result.stderr);
    const posts = proxy.requests.filter((r) => r.method === "POST" && r.path === "/automations/");
    assertEquals(posts.map((r) => r.status), [-1]);
    assertEquals((await automations()).filter((a) => a.name === "second").length, 1);
    assertMatch(result.stdout, /automation second {2}[0-9a-f-]{36} {2}created/);
  });

  await t.step(
    "a server whose automations have no tags (before 3.5) is matched by name",
    async () => {
      const older = TRIGGER.replace("- match", "- name: older-server\n        match");
      await write(manifest(older, "other"));
      await using proxy = startFaultProxy(server.apiUrl);
      // What Prefect 3.0–3.4 answer to a tags filter, and to an automation with tags.
      for (const path of [/^\/automations\/filter$/, /^\/automations\/$/]) {
        proxy.rules.push({ method: "POST", path, body: /"tags"/, times: 99, respond: 422 });
      }
      const result = await deploy(["apply"], proxy.apiUrl);
      assertEquals(result.code, 0, result.stderr);
      const made = (await automations()).find((a) => a.name === "older-server")!;
      assertEquals(made.tags, []);
      const again = await deploy(["apply"], proxy.apiUrl);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(proxy.syncWrites().filter((w) => w.status !== 422).length, 1);
    },
  );

  await t.step(
    "templates: $ENV and variables resolved at plan time, the event's kept",
    async () => {
      await call("POST", "/variables/", { name: "trigger_limit", value: 5 });
      const templated = `    triggers:
      - name: templated
        description: "{{ $TRIGGER_NOTE }}"
        expect: [deploy-ts.test.ping]
        parameters:
          limit: "{{ prefect.variables.trigger_limit }}"
          mode: "{{ event.resource.id }}"
`;
      await write(manifest(templated, "other"));
      const env = { PREFECT_API_URL: server.apiUrl, TRIGGER_NOTE: "from the environment" };
      const applied = await runDeploy(["apply"], { cwd: project.dir, env });
      assertEquals(applied.code, 0, applied.stderr);
      const made = (await automations()).find((a) => a.name === "templated")!;
      assertEquals(made.actions[0].parameters, { limit: 5, mode: "{{ event.resource.id }}" });
      assertEquals(
        (made as unknown as { description: string }).description,
        "from the environment",
      );

      await write(manifest(templated.replace("trigger_limit", "no_such_variable"), "other"));
      await using proxy = startFaultProxy(server.apiUrl);
      const refused = await runDeploy(["apply"], {
        cwd: project.dir,
        env: { ...env, PREFECT_API_URL: proxy.apiUrl },
      });
      assertEquals(refused.code, 1);
      assertEquals(proxy.syncWrites().length, 0);
      assertMatch(
        refused.stderr,
        /gamma\.yaml:11:18: error: Prefect variable "no_such_variable" does not exist/,
      );
    },
  );

  await t.step(
    "metric triggers stop apply on a server without them, before any write",
    async () => {
      await write(manifest(
        `    triggers:
      - type: metric
        metric: {name: lateness, threshold: 60, operator: ">"}
`,
        "other",
      ));
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await deploy(["apply"], proxy.apiUrl);
      assertEquals(result.code, 1);
      assertEquals(proxy.syncWrites().length, 0);
      assertMatch(
        result.stderr,
        /gamma\.yaml:7:9: error: Metric triggers exist only on Prefect Cloud/,
      );
    },
  );

  await t.step("a server without the automations API: triggers said once not synced", async () => {
    await write(manifest(TRIGGER, "other"));
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "POST", path: /^\/automations\/filter$/, times: 1, respond: 404 });
    const result = await deploy(["plan", "--detailed-exitcode"], proxy.apiUrl);
    assertEquals(result.code, 0, result.stdout + result.stderr);
    assertMatch(
      result.stderr,
      /gamma\.yaml:6:5: warning: The server has no automations API \(404\), so the triggers of 1 deployment\(s\) were not synced\. \[automations-unavailable\]/,
    );
  });

  await t.step("an SLA is said once not to be synced, never an unknown key", async () => {
    await write(manifest(
      `    sla:
      - {name: fast, duration: 600}
`,
      "other",
    ));
    const result = await deploy(["plan"]);
    assertEquals(result.code, 0, result.stderr);
    const lines = result.stderr.split("\n").filter((l) => l.includes("sla-not-synced"));
    assertEquals(lines.length, 1, result.stderr);
    assertMatch(
      lines[0],
      /gamma\.yaml:6:5: warning: 1 deployment\(s\) declare `sla`; SLAs exist only on Prefect Cloud/,
    );
  });
});

Deno.test("automations prefect deploy made are adopted by apply, not duplicated", async () => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-t", type: "process" });
  const file = manifest(
    TRIGGER + `      - name: named
        posture: Proactive
        expect: [deploy-ts.test.heartbeat]
        within: 600
        schedule_after: 30
`,
  );
  await using project = await tempProject({ "flows/etl.py": FLOWS, "prefect.yaml": file });
  const prefect = await new Deno.Command(`${server.bin}/prefect`, {
    args: ["--no-prompt", "deploy", "--all"],
    cwd: project.dir,
    env: server.clientEnv,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(
    prefect.success,
    new TextDecoder().decode(prefect.stdout) + new TextDecoder().decode(prefect.stderr),
  );
  const automations = () => call<Automation[]>("POST", "/automations/filter", {});
  const before = await automations();
  assertEquals(before.map((a) => a.name).sort(), ["named", "on-ping__automation_1"]);

  const deploy = (args: string[], apiUrl = server.apiUrl) =>
    runDeploy([...args, "prefect.yaml"], { cwd: project.dir, env: { PREFECT_API_URL: apiUrl } });
  const plan = json(await deploy(["plan", "--format", "json"]));
  assertEquals(
    plan.deployments[0].automations.map((a) => [a.name, a.action, a.changes.map((c) => c.field)]),
    [["on-ping__automation_1", "update", ["tags"]], ["named", "update", ["tags"]]],
  );
  const applied = await deploy(["apply"]);
  assertEquals(applied.code, 0, applied.stderr);
  const after = await automations();
  assertEquals(after.map((a) => a.id).sort(), before.map((a) => a.id).sort());
  assert(after.every((a) => a.tags.includes("managed-by:deploy.ts/gamma")), JSON.stringify(after));

  await using proxy = startFaultProxy(server.apiUrl);
  const again = await deploy(["apply"], proxy.apiUrl);
  assertEquals(again.code, 0, again.stderr);
  assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), []);
});
