/** Environment overlays (`--env`): resolution, and errors located in the overlay file. */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { runCli, tempProject } from "./helpers.ts";

const FLOW = `from prefect import flow


@flow
def etl(limit: int = 1, mode: str = "full"):
    pass
`;

const MANIFEST = `name: envs
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    tags: [data]
    parameters: {limit: 5}
    work_pool: {name: pool, job_variables: {env: {A: "1"}}}
    schedules:
      - {slug: n, cron: "0 1 * * *", timezone: UTC, active: true}
  - name: hourly
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool}
`;

interface Resolved {
  valid: boolean;
  environment: string | null;
  deployments: { flow: string; name: string; spec: Record<string, unknown> }[];
  diagnostics: { file: string; line: number; column: number; code: string; message: string }[];
}

async function resolve(overlay: string, env = "dev"): Promise<Resolved> {
  await using project = await tempProject({
    "flows/etl.py": FLOW,
    "prefect/etl.yaml": MANIFEST,
    [`prefect/environments/${env}.yaml`]: overlay,
  });
  const result = await runCli(["validate", "--env", "dev", "--format", "json"], {
    cwd: project.dir,
  });
  return JSON.parse(result.stdout);
}

Deno.test("--env merges the overlay: names, tags, parameters, job variables, schedules", async () => {
  const result = await resolve(`defaults:
  name_suffix: -dev
  tags: [dev]
  schedules: {active: false}
  work_pool: {job_variables: {env: {B: "2"}}}
deployments:
  etl/nightly:
    name: nightly-dev-special
    parameters: {mode: delta}
  hourly:
    paused: true
`);
  assertEquals(result.diagnostics, []);
  assertEquals(result.environment, "prefect/environments/dev.yaml");
  const [nightly, hourly] = result.deployments;
  assertEquals(nightly.name, "nightly-dev-special-dev");
  assertEquals(nightly.spec.tags, ["data", "dev"]);
  assertEquals(nightly.spec.parameters, { limit: 5, mode: "delta" });
  assertEquals(nightly.spec.work_pool, { name: "pool", job_variables: { env: { B: "2" } } });
  assertEquals((nightly.spec.schedules as { active: boolean }[])[0].active, false);
  assertEquals(hourly.name, "hourly-dev");
  assertEquals(hourly.spec.paused, true);
});

Deno.test("--env: overlay mistakes are located in the overlay file", async () => {
  const result = await resolve(`defaults:
  tagz: [dev]
  paused: "yes"
deployments:
  etl/nigthly:
    parameters: {limit: 1}
`);
  assertEquals(result.valid, false);
  assertEquals(
    result.diagnostics.map((d) => `${d.file}:${d.line}:${d.column} ${d.code}`),
    [
      "prefect/environments/dev.yaml:2:3 unknown-key",
      "prefect/environments/dev.yaml:3:11 type",
    ],
  );
  assertStringIncludes(result.diagnostics[0].message, '"tags"');
});

Deno.test("--env: a key naming no deployment, and overlay values the flow rejects", async () => {
  const result = await resolve(`deployments:
  etl/nigthly:
    parameters: {limit: 1}
  hourly:
    parameters: {limt: 2}
`);
  assertEquals(
    result.diagnostics.map((d) => `${d.file}:${d.line} ${d.code}`),
    [
      "prefect/environments/dev.yaml:2 unknown-deployment",
      "prefect/etl.yaml:10 unknown-parameter",
    ],
  );
  assertStringIncludes(result.diagnostics[0].message, 'Did you mean "etl/nightly"?');
});

Deno.test("--env: a missing overlay is one line naming the file", async () => {
  await using project = await tempProject({ "flows/etl.py": FLOW, "prefect/etl.yaml": MANIFEST });
  const result = await runCli(["validate", "--env", "prod"], { cwd: project.dir });
  assertEquals(result.code, 1);
  assertStringIncludes(
    result.stderr,
    'prefect/environments/prod.yaml: error: Environment "prod" has no overlay',
  );
  assertStringIncludes(
    result.stderr,
    "No environment has an overlay yet: create prefect/environments/prod.yaml.",
  );
  await Deno.mkdir(`${project.dir}/prefect/environments`);
  for (const name of ["dev", "prod", "staging"]) {
    await Deno.writeTextFile(`${project.dir}/prefect/environments/${name}.yaml`, "defaults: {}\n");
  }
  const typo = await runCli(["validate", "--env", "prd"], { cwd: project.dir });
  assertEquals(typo.code, 1);
  assertStringIncludes(
    typo.stderr,
    "prefect/environments/prd.yaml does not exist. Did you mean --env prod?",
  );
  const other = await runCli(["validate", "--env", "qa"], { cwd: project.dir });
  assertStringIncludes(other.stderr, "Environments with an overlay: dev, prod, staging.");
  const bad = await runCli(["validate", "--env", "../x"], { cwd: project.dir });
  assertEquals(bad.code, 1);
  assertStringIncludes(bad.stderr, '--env must be a name such as dev or prod, not "../x".');
});

Deno.test("--env: triggers switched off in the overlay, a stated `enabled` included", async () => {
  const triggers = `    triggers:
      - {expect: [a.b]}
      - {name: loud, enabled: true, expect: [c.d]}
`;
  await using project = await tempProject({
    "flows/etl.py": FLOW,
    "prefect/etl.yaml": MANIFEST.replace(
      "    work_pool: {name: pool}\n",
      `    work_pool: {name: pool}\n${triggers}`,
    ),
    "prefect/environments/dev.yaml": "defaults:\n  triggers: {enabled: false}\n",
    "prefect/environments/typo.yaml": "defaults:\n  triggers: {enable: false}\n",
  });
  const result: Resolved = JSON.parse(
    (await runCli(["validate", "--env", "dev", "--format", "json"], { cwd: project.dir })).stdout,
  );
  assertEquals(result.diagnostics, []);
  const hourly = result.deployments.find((d) => d.name === "hourly")!;
  assertEquals((hourly.spec.triggers as { enabled: boolean }[]).map((t) => t.enabled), [
    false,
    false,
  ]);
  const typo = await runCli(["validate", "--env", "typo"], { cwd: project.dir });
  assertEquals(typo.code, 1);
  assertStringIncludes(
    typo.stderr,
    'prefect/environments/typo.yaml:2:14: error: Unknown key "enable"',
  );
  assertStringIncludes(typo.stderr, 'Did you mean "enabled"?');
});
