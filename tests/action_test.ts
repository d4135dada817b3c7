/**
 * The GitHub Action (action.yml) run the way a runner runs a composite action: each step's
 * `run` through `bash -eo pipefail`, with its `env` and `${{ inputs.* }}` filled in, in a
 * workspace of its own, GITHUB_ACTION_PATH at this repository and GITHUB_STEP_SUMMARY /
 * GITHUB_OUTPUT as files; against a real Prefect server for plan and apply.
 */
import { parse as parseYaml } from "yaml";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { REPO_ROOT, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

interface ActionStep {
  id?: string;
  name: string;
  shell: string;
  run: string;
  env?: Record<string, string>;
}
interface Action {
  inputs: Record<string, { description: string; default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: ActionStep[] };
}

const action = parseYaml(Deno.readTextFileSync(`${REPO_ROOT}action.yml`)) as Action;

/** `${{ inputs.name }}` only: anything else a runner would evaluate is a test failure here. */
function expand(text: string, inputs: Record<string, string>): string {
  return text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expression: string) => {
    const input = expression.match(/^inputs\.([\w-]+)$/)?.[1];
    assert(input && input in action.inputs, `unexpected expression ${expression}`);
    return inputs[input] ?? action.inputs[input].default ?? "";
  });
}

interface ActionRun {
  code: number;
  stdout: string;
  summary: string;
  outputs: Record<string, string>;
}

async function runAction(
  inputs: Record<string, string>,
  workspace: string,
  env: Record<string, string> = {},
): Promise<ActionRun> {
  await using files = await tempProject({ summary: "", output: "" });
  let stdout = "";
  let code = 0;
  for (const step of action.runs.steps) {
    assertEquals(step.shell, "bash");
    const stepEnv = Object.fromEntries(
      Object.entries(step.env ?? {}).map(([k, v]) => [k, expand(v, inputs)]),
    );
    const output = await new Deno.Command("bash", {
      args: ["--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step.run, inputs)],
      cwd: workspace,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "/root",
        GITHUB_ACTION_PATH: REPO_ROOT.replace(/\/$/, ""),
        GITHUB_STEP_SUMMARY: `${files.dir}/summary`,
        GITHUB_OUTPUT: `${files.dir}/output`,
        ...env,
        ...stepEnv,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    stdout += new TextDecoder().decode(output.stdout);
    code = output.code;
    if (!output.success) break;
  }
  const outputs = Object.fromEntries(
    Deno.readTextFileSync(`${files.dir}/output`).split("\n").filter(Boolean)
      .map((line) => line.split("=", 2) as [string, string]),
  );
  return { code, stdout, summary: Deno.readTextFileSync(`${files.dir}/summary`), outputs };
}

const FLOW = "from prefect import flow\n\n\n@flow\ndef etl(limit: int = 1):\n    return limit\n";
const MANIFEST = `name: action-test
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool: {name: action-pool}
    schedules:
      - {slug: nightly, cron: "0 3 * * *", timezone: UTC, active: true}
`;

Deno.test("action: a composite action whose steps are tools/deno and tools/action.sh", () => {
  assertEquals(action.runs.using, "composite");
  assertEquals(action.runs.steps.map((s) => s.run), [
    '"$GITHUB_ACTION_PATH/tools/deno" --version',
    '"$GITHUB_ACTION_PATH/tools/action.sh"',
  ]);
  // Every input reaches the script; the script runs deploy with the binary's permissions.
  const env = action.runs.steps[1].env ?? {};
  for (const input of Object.keys(action.inputs)) {
    const name = `INPUT_${input.toUpperCase().replaceAll("-", "_")}`;
    assertEquals(env[name], `\${{ inputs.${input} }}`, name);
  }
  const script = Deno.readTextFileSync(`${REPO_ROOT}tools/action.sh`);
  const permissions = script.match(/^permissions=\((.*)\)$/m)?.[1];
  assertEquals(
    permissions?.split(" ").map((p) => p.replace(/^"|"$/g, "")),
    BINARY_PERMISSIONS,
  );
});

Deno.test("action: validate annotates a broken manifest and fails the step", async () => {
  await using workspace = await tempProject({
    "flows/etl.py": FLOW,
    "prefect/etl.yaml": MANIFEST.replace("cron:", "cronn:"),
  });
  const run = await runAction({ command: "validate" }, workspace.dir);
  assertEquals(run.code, 1);
  assertMatch(
    run.stdout,
    /^::error file=prefect\/etl\.yaml,line=7,col=\d+,title=unknown-key::.*"cronn"/m,
  );
  assertStringIncludes(run.summary, "### deploy validate");
  assert(!run.summary.includes("::error"), "annotations stay out of the summary");
  assertStringIncludes(run.summary, "Invalid: 1 deployment in 1 file, 1 error, 0 warnings.");
});

Deno.test("action: an unknown command is one annotation, exit 1", async () => {
  await using workspace = await tempProject({ "prefect/etl.yaml": MANIFEST });
  const run = await runAction({ command: "deploy" }, workspace.dir);
  assertEquals(run.code, 1);
  assertStringIncludes(run.stdout, 'command input must be validate, plan or apply, not "deploy"');
});

Deno.test("action: plan as the job summary with changes=true, apply, then changes=false", async () => {
  await using server = await startPrefectServer();
  await using workspace = await tempProject({
    "flows/etl.py": FLOW,
    "deploy/etl.yaml": MANIFEST,
    "deploy/environments/prod.yaml": "defaults:\n  name_prefix: prod-\n",
  });
  const pool = await fetch(`${server.apiUrl}/work_pools/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "action-pool", type: "process" }),
  });
  assertEquals(pool.status, 201, await pool.text());
  const inputs = { paths: "deploy/etl.yaml\n", env: "prod", "api-url": server.apiUrl };

  const plan = await runAction({ ...inputs, command: "plan" }, workspace.dir);
  assertEquals(plan.code, 0, plan.stdout);
  assertEquals(plan.outputs, { changes: "true" });
  assertMatch(plan.summary, /^### deploy plan\n\n```diff\n\+ create +etl\/prod-nightly$/m);
  assertStringIncludes(plan.summary, "Plan: 1 to create, 0 to update, 0 to delete, 0 unchanged.");

  // The job's PREFECT_API_URL is the default; arguments pass through unquoted.
  const apply = await runAction(
    { command: "apply", paths: inputs.paths, env: "prod", args: "--concurrency 2 -n etl/*" },
    workspace.dir,
    { PREFECT_API_URL: server.apiUrl },
  );
  assertEquals(apply.code, 0, apply.stdout);
  assertStringIncludes(apply.summary, "Apply: 1 created, 0 updated, 0 deleted, 0 unchanged.");

  const again = await runAction({ ...inputs, command: "plan" }, workspace.dir);
  assertEquals(again.code, 0, again.stdout);
  assertEquals(again.outputs, { changes: "false" });
  assertStringIncludes(again.summary, "No changes: the server matches the manifests.");
});
