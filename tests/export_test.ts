/**
 * `deploy export` against a real Prefect server, as a property: deployments made by real
 * `prefect deploy --all` from corpus files and a fixture with every kind of trigger, and by
 * Prefect's Python API, are exported with their triggers; `plan` on the exported files right
 * after shows nothing but taking each deployment and automation over; after one `apply`, `No
 * changes` and no write. Secrets from blocks stay references or stop the export.
 */
import { parse as parseYaml } from "yaml";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, REPO_ROOT, runDeploy, tempProject } from "./helpers.ts";
import { type PrefectServer, startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";
import {
  type ExportedAutomation,
  type ExportedDeployment,
  exportManifests,
  secretValues,
} from "../lib/export.ts";

const CORPUS = `${REPO_ROOT}tests/fixtures/corpus/prefect-yaml`;
/**
 * Corpus files real `prefect deploy --all` accepts with stub flows: concurrency as a number and
 * as an object, cron, intervals, git_clone and working-directory pull
 * steps, module entrypoints, versions, tags, parameters, anchors, `{{ $ENV }}` job variables,
 * inactive schedules, non-ASCII descriptions.
 */
const CORPUS_FILES = ["043.yaml", "061.yaml", "141.yaml", "159.yaml", "185.yaml"];
const CORPUS_ENV = { FLOWS_IMAGE: "registry.example/flows:1", DOCKER_NETWORK: "flows-net" };

/**
 * Every kind of trigger Prefect's server takes and every field of one, as `prefect deploy`
 * reads them; `plain` states Prefect's defaults, which export leaves out.
 */
const TRIGGERS_FIXTURE = `name: triggered
deployments:
  - name: on-events
    entrypoint: flows/triggered.py:triggered
    parameters: {limit: 1}
    work_pool: {name: trigger-pool}
    triggers:
      - match: {prefect.resource.id: "warehouse.*"}
        expect: [warehouse.loaded]
        parameters: {limit: "{{ event.payload.limit }}", mode: "{{ event.resource.id }}"}
      - name: heartbeat-missed
        description: No heartbeat for ten minutes
        enabled: false
        posture: Proactive
        expect: [warehouse.heartbeat]
        for_each: [prefect.resource.id]
        within: 600
        job_variables: {env: {MODE: alert}}
        schedule_after: 30
      - type: compound
        require: all
        within: 3600
        triggers:
          - expect: [warehouse.loaded]
          - expect: [lake.loaded]
            match_related: {prefect.resource.role: flow}
      - name: in-order
        type: sequence
        triggers:
          - expect: [a.started]
          - expect: [a.finished]
            after: [a.started]
            threshold: 2
            within: 60
  - name: plain
    entrypoint: flows/triggered.py:triggered
    work_pool: {name: trigger-pool}
    triggers:
      - expect: [plain.go]
        posture: Reactive
        threshold: 1
        within: 0
`;

interface PlanJson {
  deployments: {
    flow: string;
    name: string;
    action: string;
    changes: { field: string; before: unknown; after: unknown }[];
    automations: {
      name: string;
      id: string | null;
      action: string;
      changes: { field: string; before: unknown; after: unknown }[];
    }[];
  }[];
  requests: { read: number; write: number };
}

interface Automation {
  id: string;
  name: string;
  enabled: boolean;
  tags: string[];
  actions: { deployment_id?: string }[];
}

/** A flow file per entrypoint: each function takes the parameters its deployments pass. */
function stubFlows(manifest: { deployments: Record<string, unknown>[] }): Record<string, string> {
  const byFile = new Map<string, Map<string, Set<string>>>();
  for (const d of manifest.deployments) {
    const entrypoint = String(d.entrypoint);
    const [file, fn] = entrypoint.includes(".py:") ? entrypoint.split(":") : [
      `${entrypoint.slice(0, entrypoint.lastIndexOf(".")).replaceAll(".", "/")}.py`,
      entrypoint.slice(entrypoint.lastIndexOf(".") + 1),
    ];
    const functions = byFile.get(file) ?? new Map<string, Set<string>>();
    byFile.set(file, functions);
    const parameters = functions.get(fn) ?? new Set<string>();
    functions.set(fn, parameters);
    Object.keys((d.parameters ?? {}) as object).forEach((p) => parameters.add(p));
    for (const trigger of (d.triggers ?? []) as { parameters?: object }[]) {
      Object.keys(trigger.parameters ?? {}).forEach((p) => parameters.add(p));
    }
  }
  return Object.fromEntries([...byFile].map(([file, functions]) => [
    file,
    "from prefect import flow\n" +
    [...functions].map(([fn, parameters]) =>
      `\n\n@flow\ndef ${fn}(${[...parameters].map((p) => `${p}=None`).join(", ")}):\n    pass\n`
    ).join(""),
  ]));
}

async function deploymentKeys(server: PrefectServer): Promise<Set<string>> {
  const call = api(server.apiUrl);
  const deployments = await call<{ name: string; flow_id: string }[]>(
    "POST",
    "/deployments/filter",
    {},
  );
  const flows = await call<{ id: string; name: string }[]>("POST", "/flows/filter", {});
  const names = new Map(flows.map((f) => [f.id, f.name]));
  return new Set(deployments.map((d) => `${names.get(d.flow_id)}/${d.name}`));
}

const deploy = (
  server: PrefectServer,
  args: string[],
  cwd: string,
  apiUrl = server.apiUrl,
): Promise<CliResult> =>
  runDeploy(args, {
    cwd,
    env: { PREFECT_API_URL: apiUrl },
    permissions: BINARY_PERMISSIONS,
  });

/** Every automation whose actions name a deployment, by the deployment's `flow/name`. */
async function automationsByDeployment(server: PrefectServer): Promise<Map<string, Automation[]>> {
  const call = api(server.apiUrl);
  const [deployments, flows, automations] = await Promise.all([
    call<{ id: string; name: string; flow_id: string }[]>("POST", "/deployments/filter", {}),
    call<{ id: string; name: string }[]>("POST", "/flows/filter", {}),
    call<Automation[]>("POST", "/automations/filter", {}),
  ]);
  const flowNames = new Map(flows.map((f) => [f.id, f.name]));
  return new Map(deployments.map((d) => [
    `${flowNames.get(d.flow_id)}/${d.name}`,
    automations.filter((a) => a.actions.some((x) => x.deployment_id === d.id)),
  ]));
}

/** A change that only adds ownership marks to a list of tags. */
function assertAddsMarks(change: { before: unknown; after: unknown }, label: string) {
  const before = new Set(change.before as string[]);
  const added = (change.after as string[]).filter((t) => !before.has(t));
  assertEquals((change.after as string[]).length, before.size + added.length, label);
  assert(added.length > 0 && added.every((t) => /^(managed-by:|deploy\.ts\/)/.test(t)), label);
}

/**
 * The property: plan right after export takes each deployment and each automation that runs it
 * over (all but those named in `leftOut`) and changes nothing else; one apply keeps every
 * automation's ID and switch; then plan says `No changes` and an apply through the recording
 * proxy writes nothing.
 */
async function assertOnlyAdoption(
  server: PrefectServer,
  dir: string,
  exported: Set<string>,
  leftOut = new Set<string>(),
) {
  const before = await automationsByDeployment(server);
  const plan = await deploy(server, ["plan", "--format", "json"], dir);
  assertEquals(plan.code, 0, plan.stderr);
  const { deployments } = JSON.parse(plan.stdout) as PlanJson;
  assertEquals(new Set(deployments.map((d) => `${d.flow}/${d.name}`)), exported);
  for (const d of deployments) {
    const key = `${d.flow}/${d.name}`;
    const label = `${key}: ${JSON.stringify(d.changes)}`;
    // "adopt" once ownership marks land (issue 9); before that, the same change as an update.
    assert(d.action === "adopt" || d.action === "update", `${d.action} ${label}`);
    for (const change of d.changes) {
      if (change.field === "tags") assertAddsMarks(change, label);
      else {
        // Schedules prefect deploy made have no slug; taking them over names them in place.
        assertMatch(change.field, /^schedules\[[^\]]+\]\.slug$/, label);
        assertEquals(change.before, null, label);
      }
    }
    const triggers = (before.get(key) ?? []).filter((a) => !leftOut.has(a.name));
    assertEquals(
      d.automations.map((a) => [a.name, a.id]).sort(),
      triggers.map((a) => [a.name, a.id]).sort(),
      key,
    );
    for (const a of d.automations) {
      const what = `${key} automation ${a.name}: ${a.action} ${JSON.stringify(a.changes)}`;
      // An automation prefect deploy made has no tags: adopting it adds the mark in place.
      assert(a.action === "update" || a.action === "noop", what);
      assertEquals(a.changes.map((c) => c.field), a.action === "noop" ? [] : ["tags"], what);
      a.changes.forEach((change) => assertAddsMarks(change, what));
    }
  }
  const apply = await deploy(server, ["apply"], dir);
  assertEquals(apply.code, 0, apply.stderr + apply.stdout);
  const after = await automationsByDeployment(server);
  for (const key of exported) {
    const shape = (list: Automation[]) => list.map((a) => [a.id, a.name, a.enabled]).sort();
    assertEquals(shape(after.get(key) ?? []), shape(before.get(key) ?? []), key);
    for (const a of after.get(key) ?? []) {
      assertEquals(a.tags.some((t) => t.startsWith("managed-by:")), !leftOut.has(a.name), a.name);
    }
  }
  const again = await deploy(server, ["plan", "--detailed-exitcode"], dir);
  assertEquals(again.code, 0, again.stdout + again.stderr);
  assertStringIncludes(again.stdout, "No changes: the server matches the manifests.");
  await using proxy = startFaultProxy(server.apiUrl);
  const noop = await deploy(server, ["apply", "--format", "json"], dir, proxy.apiUrl);
  assertEquals(noop.code, 0, noop.stderr);
  assertEquals(proxy.syncWrites().map((w) => `${w.method} ${w.path}`), []);
  assertEquals((JSON.parse(noop.stdout) as PlanJson).requests.write, 0);
}

Deno.test("export against a real Prefect server", async (t) => {
  await using server = await startPrefectServer();
  await t.step(
    "deployments made by prefect deploy from corpus files and triggers round-trip",
    () => fromCorpus(server),
  );
  await t.step(
    "deployments made with the Python API round-trip; secrets stay references",
    () => fromPython(server),
  );
});

async function fromCorpus(server: PrefectServer) {
  const call = api(server.apiUrl);
  const cases = [
    ...CORPUS_FILES.map((name) => ({ name, text: Deno.readTextFileSync(`${CORPUS}/${name}`) })),
    { name: "the triggers fixture", text: TRIGGERS_FIXTURE },
  ];
  for (const { name, text } of cases) {
    const manifest = parseYaml(text, { merge: true });
    await using project = await tempProject({ "prefect.yaml": text, ...stubFlows(manifest) });
    const pools = new Set<string>(
      manifest.deployments.map((d: { work_pool?: { name?: string } }) => d.work_pool?.name)
        .filter(Boolean),
    );
    for (const pool of pools) await call("POST", "/work_pools/", { name: pool, type: "process" });

    const before = await deploymentKeys(server);
    const made = await new Deno.Command(`${server.bin}/prefect`, {
      args: ["--no-prompt", "deploy", "--all"],
      cwd: project.dir,
      env: { ...server.clientEnv, ...CORPUS_ENV },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(made.success, `${name}: ${new TextDecoder().decode(made.stdout).slice(-2000)}`);
    const created = new Set([...await deploymentKeys(server)].filter((k) => !before.has(k)));
    assertEquals(created.size, manifest.deployments.length, name);

    const exported = await deploy(server, ["export", ...created], project.dir);
    assertEquals(exported.code, 0, `${name}: ${exported.stderr}`);
    const written = exported.stdout.trim().split("\n");
    assertEquals(
      new Set(written.flatMap((line) => line.split("  ")[1].split(", "))),
      created,
      name,
    );
    const strict = await deploy(server, ["validate"], project.dir);
    assertEquals(strict.code, 0, `${name}: ${strict.stderr}`);
    // Every automation prefect deploy made is a trigger, written where its deployment is.
    const declared = new Map<string, unknown[]>(
      manifest.deployments.map((d: { name: string; triggers?: unknown[] }) => [
        d.name,
        d.triggers ?? [],
      ]),
    );
    const files = written.map((line) =>
      parseYaml(Deno.readTextFileSync(
        `${project.dir}/${line.split("  ")[0].slice("wrote ".length)}`,
      ))
    );
    const triggers = new Map<string, Record<string, unknown>[]>(
      files.flatMap((f) => f.deployments).map((d: { name: string; triggers?: [] }) => [
        d.name,
        d.triggers ?? [],
      ]),
    );
    for (const [deployment, stated] of declared) {
      assertEquals(triggers.get(deployment)?.length ?? 0, stated.length, deployment);
    }
    assert(!exported.stderr.includes("Not exported"), exported.stderr);
    if (text === TRIGGERS_FIXTURE) assertFixtureTriggers(triggers, exported.stdout, project.dir);
    await assertOnlyAdoption(server, project.dir, created);
  }
}

/** The fixture's triggers come back as written, but for Prefect's defaults and `enabled`. */
function assertFixtureTriggers(
  triggers: Map<string, Record<string, unknown>[]>,
  stdout: string,
  dir: string,
) {
  const { deployments } = parseYaml(TRIGGERS_FIXTURE);
  const [{ enabled: _, ...switchedOff }] = deployments[0].triggers.slice(1);
  assertEquals(triggers.get("on-events"), [
    deployments[0].triggers[0],
    switchedOff,
    ...deployments[0].triggers.slice(2),
  ]);
  assertEquals(triggers.get("plain"), [{ expect: ["plain.go"] }]);
  const file = stdout.split("  ")[0].slice("wrote ".length);
  assertStringIncludes(
    Deno.readTextFileSync(`${dir}/${file}`),
    "      # Switched off on the server. Left out, enabled stays as the UI\n" +
      "      # sets it; add `enabled: false` to keep it off.\n      - name: heartbeat-missed\n",
  );
}

const API_FLOW = `from prefect import flow


@flow
def api_flow(n: int = 1, label: str = "x"):
    """Counts to n."""
    return n
`;
const SECRET = "s3cr3t-token-value";
const ANONYMOUS_SECRET = "anonymous-secret-4711";

async function fromPython(server: PrefectServer) {
  await using project = await tempProject({ "flows/api_flow.py": API_FLOW });
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "py-pool", type: "process" });
  const script = `
from prefect import flow
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import deploy
from prefect.events import DeploymentCompoundTrigger, DeploymentEventTrigger, EventTrigger
from prefect.schedules import Cron, Interval

Secret(value="${SECRET}").save("api-token")
source = flow.from_source(source=".", entrypoint="flows/api_flow.py:api_flow")
source.deploy(
    name="from-python",
    work_pool_name="py-pool",
    parameters={"n": 3},
    tags=["py"],
    schedules=[Cron("0 5 * * *", timezone="Europe/Berlin"), Interval(3600, slug="hourly")],
    job_variables={"env": {"API_TOKEN": Secret.load("api-token").get(), "MODE": "full"}},
    concurrency_limit=ConcurrencyLimitConfig(
        limit=3, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    ),
    description="Made in Python",
    triggers=[
        DeploymentEventTrigger(
            name="on-request",
            match={"prefect.resource.id": "api.*"},
            expect={"api.requested"},
            parameters={"n": "{{ event.payload.n }}", "label": Secret.load("api-token").get()},
        ),
        DeploymentCompoundTrigger(
            require="any",
            triggers=[EventTrigger(expect={"a.done"}), EventTrigger(expect={"b.done"})],
            job_variables={"env": {"MODE": "event"}},
        ),
    ],
    print_next_steps=False,
)
deploy(
    source.to_deployment(name="paused-one", cron="0 6 * * *", paused=True),
    work_pool_name="py-pool",
    print_next_steps_message=False,
)
`;
  const made = await new Deno.Command(`${server.bin}/python`, {
    args: ["-c", script],
    cwd: project.dir,
    env: server.clientEnv,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(made.success, new TextDecoder().decode(made.stderr).slice(-3000));
  // Automations made by hand that act on the deployment but are not one of its triggers.
  const { id } = await call<{ id: string }>("GET", "/deployments/name/api-flow/from-python");
  const run = {
    type: "run-deployment",
    source: "selected",
    deployment_id: id,
    parameters: null,
    job_variables: null,
  };
  const byHand = {
    trigger: { type: "event", expect: ["api.failed"], posture: "Reactive", threshold: 1 },
    actions_on_trigger: [],
    actions_on_resolve: [],
  };
  await call("POST", "/automations/", {
    ...byHand,
    name: "retry-and-log",
    actions: [run, { type: "do-nothing" }],
  });
  await call("POST", "/automations/", {
    ...byHand,
    name: "pause-on-failure",
    actions: [{ type: "pause-deployment", source: "selected", deployment_id: id }],
  });

  const exported = await deploy(server, ["export", "api-flow/*"], project.dir);
  assertEquals(exported.code, 0, exported.stderr);
  assertEquals(
    exported.stdout,
    "wrote prefect/api-flow.yaml  api-flow/from-python, api-flow/paused-one\n",
  );
  assertStringIncludes(
    exported.stderr,
    'Not exported: automation "retry-and-log" of api-flow/from-python is not a trigger of the ' +
      "manifest (it has 2 actions).\n",
  );
  assertStringIncludes(
    exported.stderr,
    'Not exported: automation "pause-on-failure" of api-flow/from-python is not a trigger of ' +
      'the manifest (its action is "pause-deployment").\n',
  );
  const text = Deno.readTextFileSync(`${project.dir}/prefect/api-flow.yaml`);
  assert(!(exported.stdout + exported.stderr + text).includes(SECRET), "the secret is written");
  assertEquals(
    text.split("\n")[0],
    "# yaml-language-server: $schema=../schema/deployments.schema.json",
  );
  assertStringIncludes(text, "# Paused on the server.");
  const manifest = parseYaml(text);
  assertEquals(manifest.name, project.dir.split("/").pop());
  const [fromPython, paused] = manifest.deployments;
  assertEquals(fromPython, {
    name: "from-python",
    entrypoint: "flows/api_flow.py:api_flow",
    description: "Made in Python",
    version: fromPython.version,
    tags: ["py"],
    parameters: { n: 3 },
    work_pool: {
      name: "py-pool",
      job_variables: { env: { API_TOKEN: "{{ prefect.blocks.secret.api-token }}", MODE: "full" } },
    },
    concurrency_limit: { limit: 3, collision_strategy: "CANCEL_NEW" },
    schedules: fromPython.schedules,
    triggers: [
      {
        name: "on-request",
        match: { "prefect.resource.id": "api.*" },
        expect: ["api.requested"],
        parameters: { n: "{{ event.payload.n }}", label: "{{ prefect.blocks.secret.api-token }}" },
      },
      {
        // Named by position (from-python__automation_2) by Prefect's Python API as by deploy.ts.
        type: "compound",
        require: "any",
        triggers: [{ expect: ["a.done"] }, { expect: ["b.done"] }],
        job_variables: { env: { MODE: "event" } },
      },
    ],
  });
  assertMatch(fromPython.version, /^[0-9a-f]{32}$/, "the server's version: the file's hash");
  assertEquals(
    fromPython.schedules.map((s: Record<string, unknown>) => [s.slug, s.cron ?? s.interval]).sort(),
    [["hourly", 3600], ["schedule-2", "0 5 * * *"]],
  );
  assertEquals(paused.paused, undefined, "paused is left to the UI");
  assertEquals(paused.schedules, [{ slug: "schedule-1", cron: "0 6 * * *", active: true }]);

  await assertOnlyAdoption(
    server,
    project.dir,
    new Set(["api-flow/from-python", "api-flow/paused-one"]),
    new Set(["retry-and-log", "pause-on-failure"]),
  );
  const onServer = await call<{ name: string; paused: boolean; job_variables: unknown }[]>(
    "POST",
    "/deployments/filter",
    {},
  );
  assertEquals(onServer.find((d) => d.name === "paused-one")?.paused, true);
  assertEquals(
    onServer.find((d) => d.name === "from-python")?.job_variables,
    { env: { API_TOKEN: SECRET, MODE: "full" } },
  );

  // Exporting again finds both declared; a pattern that matches nothing is an error.
  const again = await deploy(server, ["export", "api-flow/*"], project.dir);
  assertEquals(again.code, 0, again.stderr);
  assertStringIncludes(again.stderr, "Skipped api-flow/from-python: the manifests in prefect/");
  assertEquals(again.stdout, "");
  const none = await deploy(server, ["export", "nope/*"], project.dir);
  assertEquals(none.code, 1);
  assertMatch(
    none.stderr,
    /^error: No deployment on http:\/\/127\.0\.0\.1:\d+\/api matches --name "nope\/\*"\.$/m,
  );

  // A value from an unnamed secret block cannot be referred to: nothing is written.
  const anonymous = `
import asyncio
from prefect import flow
from prefect.blocks.system import Secret
asyncio.run(Secret(value="${ANONYMOUS_SECRET}")._save(is_anonymous=True))
flow.from_source(source=".", entrypoint="flows/api_flow.py:api_flow").deploy(
    name="leaky", work_pool_name="py-pool", parameters={"label": "${ANONYMOUS_SECRET}"},
    print_next_steps=False,
)
`;
  const leaky = await new Deno.Command(`${server.bin}/python`, {
    args: ["-c", anonymous],
    cwd: project.dir,
    env: server.clientEnv,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(leaky.success, new TextDecoder().decode(leaky.stderr).slice(-3000));
  await Deno.remove(`${project.dir}/prefect`, { recursive: true });
  const refused = await deploy(server, ["export", "api-flow/*"], project.dir);
  assertEquals(refused.code, 1);
  assertStringIncludes(
    refused.stderr,
    "error: Nothing exported: api-flow/leaky: parameters.label holds the value of the secret " +
      "block secret/(anonymous) (value); the block has no name to refer to",
  );
  assert(!(refused.stdout + refused.stderr).includes(ANONYMOUS_SECRET), refused.stderr);
  assert(!(refused.stdout + refused.stderr).includes(SECRET), refused.stderr);
  assertEquals(await Array.fromAsync(Deno.readDir(project.dir)).then((e) => e.map((x) => x.name)), [
    "flows",
  ]);
}

/** An automation as the server holds one `prefect deploy` made for deployment d1. */
function automation(name: string, created: string, more: Partial<ExportedAutomation> = {}) {
  return {
    id: `a-${name}-${created}`,
    name,
    created,
    description: "",
    enabled: true,
    tags: [],
    trigger: {
      type: "event",
      id: crypto.randomUUID(),
      match: {},
      match_related: {},
      after: [],
      expect: ["etl.requested"],
      for_each: [],
      posture: "Reactive",
      threshold: 1,
      within: 0,
    },
    actions: [{
      type: "run-deployment",
      source: "selected",
      deployment_id: "d1",
      parameters: null,
      job_variables: null,
      schedule_after: 0,
    }],
    actions_on_trigger: [],
    actions_on_resolve: [],
    ...more,
  };
}

Deno.test("export: manifests leave out deploy.ts's defaults and refer to secrets by block", () => {
  const deployment: ExportedDeployment = {
    flow: "etl",
    id: "d1",
    name: "nightly",
    description: "Loads the day.",
    version: "7",
    tags: ["team", "managed-by:deploy.ts/old", "deploy.ts/env:prod"],
    parameters: { dsn: `postgres://etl:${SECRET}@db/etl`, limit: 10 },
    parameter_openapi_schema: { type: "object", properties: { limit: { type: "integer" } } },
    enforce_parameter_schema: true,
    entrypoint: "flows/etl.py:etl",
    pull_steps: [{ "prefect.deployments.steps.set_working_directory": { directory: "/srv" } }],
    work_pool_name: "pool",
    work_queue_name: "default",
    job_variables: {},
    paused: true,
    global_concurrency_limit: { limit: 2 },
    concurrency_options: { collision_strategy: "ENQUEUE", grace_period_seconds: null },
    schedules: [{
      slug: null,
      schedule: { cron: "0 3 * * *", timezone: null, day_or: true },
      active: false,
      parameters: {},
    }],
    // In the server's order (by name), not the order they were made in.
    automations: [
      automation("again", "2026-01-03"),
      automation("again", "2026-01-04"),
      automation("nightly__automation_1", "2026-01-01"),
      automation("nightly__automation_3", "2026-01-02", {
        enabled: false,
        description: "Off for now",
        actions: [{
          type: "run-deployment",
          source: "selected",
          deployment_id: "d1",
          parameters: { dsn: `postgres://etl:${SECRET}@db/etl` },
          job_variables: {},
          schedule_after: 60,
        }],
        tags: ["managed-by:deploy.ts/analytics"],
      }),
      automation("page-on-call", "2026-01-05", {
        actions: [
          automation("x", "").actions[0],
          { type: "send-notification", block_document_id: "b1", subject: "s", body: "b" },
        ],
      }),
    ],
  };
  const result = exportManifests(
    [deployment, { ...deployment, id: "d2", name: "declared" }],
    [{ value: SECRET, block: "secret/db (value)", reference: "{{ prefect.blocks.secret.db }}" }],
    {
      flowName: () => "etl",
      inferred: () => ({
        schema: { type: "object", properties: { limit: { type: "integer" } } },
        description: "Loads the day.",
      }),
    },
    {
      project: "analytics",
      manifestDir: "prefect",
      cwd: "/srv",
      declared: new Set(["etl/declared"]),
      exists: (path) => path === "prefect/etl.yaml",
      source: "http://127.0.0.1:4200/api",
    },
  );
  assertEquals(result.refused, []);
  assertEquals(result.notes, [
    'etl/nightly is managed by project "old": plan and apply take it over only with --adopt.',
    'Not exported: automation "again" of etl/nightly is not a trigger of the manifest ' +
    "(2 automations acting on the deployment have this name).",
    'Not exported: automation "again" of etl/nightly is not a trigger of the manifest ' +
    "(2 automations acting on the deployment have this name).",
    'Not exported: automation "page-on-call" of etl/nightly is not a trigger of the manifest ' +
    "(it has 2 actions).",
    "Skipped etl/declared: the manifests in prefect/ declare it already.",
  ]);
  assertEquals(result.files.map((f) => [f.path, f.deployments]), [
    ["prefect/etl-2.yaml", ["etl/nightly"]],
  ]);
  const text = result.files[0].content;
  assert(!text.includes(SECRET), text);
  assertStringIncludes(text, 'dsn: "postgres://etl:{{ prefect.blocks.secret.db }}@db/etl"');
  assertStringIncludes(text, "  # Paused on the server.");
  assertStringIncludes(
    text,
    "      # Switched off on the server. Left out, enabled stays as the UI\n",
  );
  assertEquals(parseYaml(text), {
    name: "analytics",
    deployments: [{
      name: "nightly",
      entrypoint: "flows/etl.py:etl",
      version: "7",
      tags: ["team"],
      parameters: { dsn: "postgres://etl:{{ prefect.blocks.secret.db }}@db/etl", limit: 10 },
      work_pool: { name: "pool" },
      concurrency_limit: 2,
      schedules: [{ slug: "schedule-1", cron: "0 3 * * *", active: false }],
      triggers: [
        { expect: ["etl.requested"] },
        {
          name: "nightly__automation_3",
          description: "Off for now",
          expect: ["etl.requested"],
          parameters: { dsn: "postgres://etl:{{ prefect.blocks.secret.db }}@db/etl" },
          schedule_after: 60,
        },
      ],
    }],
  });
});

Deno.test("export: a server without automations is said once; its deployments have no triggers", () => {
  const bare: ExportedDeployment = { flow: "etl", id: "d1", name: "a", entrypoint: "f.py:etl" };
  const result = exportManifests([bare, { ...bare, id: "d2", name: "b" }], [], {
    flowName: () => "etl",
    inferred: () => undefined,
  }, {
    project: "p",
    manifestDir: "prefect",
    cwd: "/srv",
    declared: new Set(),
    exists: () => false,
    source: "http://127.0.0.1:4200/api",
  });
  assertEquals(result.notes, ["The server has no automations API (404): no triggers exported."]);
  assertEquals(
    parseYaml(result.files[0].content).deployments.map((d: Record<string, unknown>) => d.triggers),
    [undefined, undefined],
  );
});

Deno.test("export: secret fields of any block type, nested and wildcard, are found", () => {
  const secrets = secretValues([
    {
      name: "warehouse",
      is_anonymous: false,
      data: { username: "etl", password: "hunter22", extra: { token: "tok-123456" } },
      block_type: { slug: "database-credentials" },
      block_schema: { fields: { secret_fields: ["password", "extra.*"] } },
    },
    {
      name: "api-token",
      is_anonymous: false,
      data: { value: "abc" },
      block_type: { slug: "secret" },
      block_schema: { fields: { secret_fields: ["value"] } },
    },
  ]);
  assertEquals(secrets.map((s) => [s.value, s.reference]), [
    ["tok-123456", "{{ prefect.blocks.database-credentials.warehouse.extra.token }}"],
    ["hunter22", "{{ prefect.blocks.database-credentials.warehouse.password }}"],
    ["abc", "{{ prefect.blocks.secret.api-token }}"],
  ]);
});
