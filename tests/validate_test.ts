/** validate's checks, one mistake at a time, each at its file:line:col. */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  canonicalTimezone,
  cronNeverFires,
  cronProblem,
  type Diagnostic,
  intervalSeconds,
  parameterValidator,
  plainTypesAccept,
  timezoneProblem,
  validate,
} from "../deploy.ts";
import { tempProject, validateOptions } from "./helpers.ts";

const FLOW =
  "from prefect import flow\n\n@flow\ndef etl(since=None, broken=None, jinja=None):\n    pass\n";

/** Validates manifests in a temporary project (with flows/etl.py) and returns the diagnostics. */
async function diagnose(
  manifests: Record<string, string>,
  options: { codeChecks?: boolean; strict?: boolean } = {},
): Promise<Diagnostic[]> {
  await using project = await tempProject({ "flows/etl.py": FLOW, ...manifests });
  const cwd = Deno.cwd();
  Deno.chdir(project.dir);
  try {
    const result = await validate(validateOptions({ paths: Object.keys(manifests), ...options }));
    // These one-off manifests name no project; that warning has a test of its own.
    return result.diagnostics.filter((d) => d.code !== "implicit-project-name");
  } finally {
    Deno.chdir(cwd);
  }
}

/** One deployment, indented under `deployments:`; schedules are optional extra lines. */
function manifest(
  extra = "",
  base = "name: nightly\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: pool}",
) {
  return `deployments:\n  - ${base}\n${extra}`;
}

const brief = (ds: Diagnostic[]) => ds.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`);

Deno.test("validate: unknown keys get did-you-mean and known keys in the wrong place a pointer", async () => {
  const ds = await diagnose({
    "m.yaml": manifest(
      "    job_variables: {image: x}\n    descripton: typo\n    schedules:\n      - {cronn: '0 * * * *', timezone: UTC, active: true}\n",
    ),
  });
  assertEquals(brief(ds), [
    "5:5 error unknown-key",
    "6:5 error unknown-key",
    "8:10 error unknown-key",
  ]);
  assertStringIncludes(
    ds[0].message,
    'Unknown key "job_variables" in a deployment. It belongs under `work_pool:`.',
  );
  assertStringIncludes(ds[1].message, 'Did you mean "description"?');
  assertStringIncludes(ds[2].message, 'Did you mean "cron"?');
});

Deno.test("validate: wrong types and missing keys point at the value or its mapping", async () => {
  const ds = await diagnose({
    "m.yaml":
      "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: p}\n    tags: web\n    paused: yes\n    version: 1.5\n  - name: b\n",
  });
  assertEquals(brief(ds), [
    "5:11 error type",
    "6:13 error type",
    "7:14 error type",
    "8:5 error missing-key",
    // Independent of the missing entrypoint.
    "8:5 warning no-work-pool",
  ]);
  assertStringIncludes(
    ds[0].message,
    'Expected a list or a {{ template }} string, got a string "web".',
  );
  assertStringIncludes(ds[1].message, '"yes" is a string in YAML 1.2');
  assertStringIncludes(ds[2].message, 'Quote it: "1.5".');
  assertStringIncludes(ds[3].message, 'Missing required key "entrypoint" in a deployment.');
});

Deno.test("validate: schedules need exactly one valid kind, a real timezone and unique slugs", async () => {
  const schedule = (body: string) => `      - {${body}, timezone: UTC, active: true}\n`;
  const ds = await diagnose({
    "m.yaml": manifest(
      "    schedules:\n" +
        schedule("cron: '0 6 * * *', interval: 60") +
        schedule("slug: a") +
        schedule("cron: '0 25 * * *'") +
        schedule("interval: PT0S") +
        schedule("interval: 'every day'") +
        schedule("rrule: 'FREQ=SOMETIMES'") +
        "      - {cron: '@daily', timezone: Mars/Olympus, active: true, slug: a}\n" +
        "      - {cron: '@daily', timezone: europe/berlin, active: true}\n",
    ),
  });
  assertEquals(brief(ds), [
    "6:9 error schedule-kind",
    "7:9 error schedule-kind",
    "8:16 error invalid-cron",
    "9:20 error invalid-interval",
    "10:20 error invalid-interval",
    "11:17 error invalid-rrule",
    "12:36 error invalid-timezone",
    "12:70 error duplicate-slug",
    "13:36 error invalid-timezone",
  ]);
  assertStringIncludes(ds[2].message, 'hour field "25": 25 is outside 0-23');
  assertStringIncludes(ds[8].message, 'write "Europe/Berlin"');
});

Deno.test("validate: the legacy schedule warns, and both schedule and schedules is an error", async () => {
  const legacy = await diagnose({
    "m.yaml": manifest("    schedule: {cron: '0 6 * * *', timezone: UTC, active: true}\n"),
  });
  assertEquals(brief(legacy), ["5:5 warning legacy-schedule"]);
  const both = await diagnose({
    "m.yaml": manifest(
      "    schedule: {cron: '0 6 * * *'}\n    schedules: [{cron: '0 7 * * *', timezone: UTC, active: true}]\n",
    ),
  });
  assertEquals(brief(both).filter((d) => d.includes("error")), ["5:5 error schedule-conflict"]);
});

Deno.test("validate: deployment names are unique per flow across files", async () => {
  const ds = await diagnose({
    "a.yaml": manifest(),
    "b.yaml": manifest(
      "",
      "name: nightly\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: other}",
    ),
    "c.yaml": manifest(
      "",
      "name: nightly\n    flow_name: another\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: p}",
    ),
  });
  assertEquals(brief(ds), ["2:11 error duplicate-deployment"]);
  assertEquals(ds[0].file, "b.yaml");
  assertStringIncludes(
    ds[0].message,
    'Deployment "etl/nightly" is declared twice; the first is at a.yaml:2:11.',
  );
});

Deno.test("validate: entrypoints must be well formed, exist and define the function", async () => {
  const ds = await diagnose({
    "a.yaml": manifest("", "name: a\n    entrypoint: flows/etl.py\n    work_pool: {name: p}"),
    "b.yaml": manifest(
      "",
      "name: b\n    entrypoint: flows/missing.py:etl\n    work_pool: {name: p}",
    ),
    "c.yaml": manifest("", "name: c\n    entrypoint: flows/etl.py:elt\n    work_pool: {name: p}"),
  });
  assertEquals(brief(ds), [
    "3:17 error invalid-value",
    "3:17 error entrypoint-not-found",
    "3:17 error flow-not-found",
  ]);
  assertStringIncludes(
    ds[2].message,
    'Function "elt" is not defined at the top level of "flows/etl.py"',
  );
  const skipped = await diagnose({
    "b.yaml": manifest(
      "",
      "name: b\n    entrypoint: flows/missing.py:etl\n    work_pool: {name: p}",
    ),
  }, { codeChecks: false });
  assertEquals(skipped, []);
});

Deno.test("validate: no work pool warns; --strict makes every warning an error", async () => {
  const text = manifest("", "name: a\n    entrypoint: flows/etl.py:etl");
  assertEquals(brief(await diagnose({ "m.yaml": text })), ["2:5 warning no-work-pool"]);
  assertEquals(brief(await diagnose({ "m.yaml": text }, { strict: true })), [
    "2:5 error no-work-pool",
  ]);
});

Deno.test("validate: concurrency limits", async () => {
  const invalid = await diagnose({ "m.yaml": manifest("    concurrency_limit: 0\n") });
  assertEquals(brief(invalid), ["5:24 error invalid-value"]);
  assertStringIncludes(invalid[0].message, "Must be >= 1, got 0.");
  const options = await diagnose({
    "m.yaml": manifest(
      "    concurrency_limit: {limit: 2, collision_strategy: enqueue, grace_period_seconds: 5}\n",
    ),
  });
  assertEquals(brief(options), ["5:55 error invalid-value", "5:86 error invalid-value"]);
  assertStringIncludes(options[0].message, 'Did you mean "ENQUEUE"?');
  const valid = await diagnose({
    "m.yaml": manifest("    concurrency_limit: {limit: 2, collision_strategy: CANCEL_NEW}\n"),
  });
  assertEquals(valid, []);
});

Deno.test("validate: templates are well formed and step references point at earlier steps", async () => {
  const ds = await diagnose({
    "m.yaml": `pull:
  - prefect.deployments.steps.git_clone:
      id: clone
      repository: https://example.com/repo.git
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ clone.directory }}"
  - prefect.deployments.steps.pip_install_requirements:
      directory: "{{ cloned.directory }}"
deployments:
  - name: a
    entrypoint: flows/etl.py:etl
    work_pool:
      name: p
      job_variables:
        image: "{{ build.image }}"
        env: {TOKEN: "{{ prefect.blocks.secret.token }}", RUN: "{{ flow_run.id }}", X: "{{ $1BAD }}"}
    parameters:
      since: "{{ prefect.variables.since }}"
      broken: "{{ oops"
      jinja: "{{ x | upper }}"
`,
  });
  assertEquals(brief(ds), [
    "8:18 error template-reference",
    "15:16 error template-reference",
    "16:88 error template-reference",
    "19:15 error template-syntax",
    "20:14 error template-syntax",
  ]);
  assertStringIncludes(
    ds[0].message,
    '"{{ cloned.directory }}" refers to no earlier step id (step ids here: "clone")',
  );
});

Deno.test("validate: step outputs exist, by Prefect's rules for deployment-level steps", async () => {
  const ds = await diagnose({
    "m.yaml": `build:
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      image_name: acme/flows
push:
  - prefect_docker.deployments.steps.push_docker_image:
      id: push-image
      image_name: "{{ build-image.image_name }}"
      tag: "{{ build-image.tagg }}"
deployments:
  - name: a
    entrypoint: flows/etl.py:etl
    work_pool: {name: p, job_variables: {image: "{{ push-image.image }}", id: "{{ push-image.image_id }}"}}
    pull:
      - prefect.deployments.steps.set_working_directory:
          directory: "/opt/{{ build-image.tag }}"
  - name: b
    entrypoint: flows/etl.py:etl
    build: null
    work_pool: {name: p, job_variables: {image: "{{ build-image.image }}"}}
  - name: c
    entrypoint: flows/etl.py:etl
    build:
      - prefect.deployments.steps.run_shell_script:
          id: sha
          script: git rev-parse HEAD
    work_pool: {name: p, job_variables: {tag: "{{ sha.stdout }}", bad: "{{ sha.image }}"}}
`,
  });
  assertEquals(brief(ds), [
    "8:19 error template-reference",
    "9:12 error template-reference",
    "13:79 error template-reference",
    "20:49 error template-reference",
    "27:72 error template-reference",
  ]);
  // Prefect runs the top-level push for b too, after b's own (empty) build.
  assertStringIncludes(
    ds[0].message,
    'For deployment "b", whose own `build` replaces the top-level one: "{{ ' +
      'build-image.image_name }}" refers to no earlier step id (no step before it has an id); ' +
      "Prefect would leave it empty.",
  );
  assertStringIncludes(
    ds[1].message,
    '"{{ build-image.tagg }}": step "build-image" (build_docker_image) has no output "tagg"; ' +
      'did you mean "tag"? Its outputs are image_name, tag, image, image_id, additional_tags.',
  );
  // Checked after a's, b's and c's builds, each placeholder is reported once.
  assertEquals(ds.filter((d) => d.line === 9).length, 1);
  assertStringIncludes(
    ds[2].message,
    'step "push-image" (push_docker_image) has no output "image_id"',
  );
  assertStringIncludes(ds[3].message, '"{{ build-image.image }}" refers to no earlier step id');
  assertStringIncludes(ds[4].message, 'step "sha" (run_shell_script) has no output "image"');
});

Deno.test("validate: steps have one key and Prefect's step names exist", async () => {
  const ds = await diagnose({
    "m.yaml": `pull:
  - prefect.deployments.steps.git_clone:
    repository: https://example.com/repo.git
  - prefect.deployments.steps.pip_install_requiements: {}
  - prefect.projects.steps.set_working_directory: {directory: /app}
deployments: []
`,
  });
  // One step's shape does not hide the names of the others.
  assertEquals(brief(ds), [
    "2:5 error step-shape",
    "4:5 error unknown-step",
    "5:5 error removed-step",
  ]);
  assertStringIncludes(
    ds[1].message,
    'Did you mean "prefect.deployments.steps.pip_install_requirements"?',
  );
});

Deno.test("validate: anchors, aliases and merge keys resolve, and errors point at the anchor", async () => {
  const ds = await diagnose({
    "m.yaml": `definitions:
  pool: &pool {name: p, work_queue_name: default}
  daily: &daily {cron: "0 6 * * *", timezone: UTC, active: true}
  base: &base
    entrypoint: flows/etl.py:etl
    work_pool: *pool
    tags: [etl]
    schedules: [*daily]
deployments:
  - <<: *base
    name: one
  - <<: *base
    name: two
    schedules: [{<<: *daily, timezon: UTC}]
`,
  });
  assertEquals(brief(ds), ["14:30 error unknown-key"]);
  const broken = await diagnose({
    "m.yaml": `definitions:
  base: &base
    entrypoint: flows/etl.py:etl
    work_pool: {name: p}
    paused: maybe
deployments:
  - <<: *base
    name: one
`,
  });
  assertEquals(brief(broken), ["5:13 error type"]);
});

Deno.test("validate: unquoted templates and docstrings get a specific hint", async () => {
  const ds = await diagnose({
    "a.yaml": manifest("    parameters:\n      dir: {{ clone.directory }}\n"),
    "b.yaml": '"""\nMy project\n"""\ndeployments: []\n',
  });
  assertEquals(brief(ds), ["6:12 error yaml-syntax", "1:3 error yaml-syntax"]);
  assertStringIncludes(ds[0].message, "Unquoted template");
  assertStringIncludes(ds[1].message, "Python docstring");
});

Deno.test("cron: agrees with croniter, Prefect's validator, on these expressions", () => {
  // Verdicts recorded from prefect._vendor.croniter.croniter.is_valid in Prefect 3.8.8.
  const croniter: [string, boolean][] = [
    ["0 0 * * * 30", true],
    ["0 0 1 1 * 2020 2021", false],
    ["*/5 * * * * *", true],
    ["0 0 L * *", true],
    ["@daily", true],
    ["0 0 ? * *", true],
    ["0 0 * * 7", true],
    ["0 0 31 2 *", true],
    ["0 0 * * 1#2", true],
    ["0 9-17/2 * * mon-fri", true],
    ["*/0 * * * *", false],
    ["0 0 * * sun,sat", true],
    ["60 * * * *", false],
    ["0 0 0 * *", false],
    ["* * * * * * * *", false],
  ];
  for (const [expression, valid] of croniter) {
    assertEquals(cronProblem(expression) === undefined, valid, expression);
  }
  assertStringIncludes(cronProblem("H * * * *")!, "random (R) and hashed (H)");
});

Deno.test("interval: seconds, ISO-8601 durations and HH:MM:SS", () => {
  const cases: [number | string, number | undefined][] = [
    [3600, 3600],
    ["90", 90],
    ["PT15M", 900],
    ["P1DT1H", 90000],
    ["01:30:00", 5400],
    ["1 day, 00:00:01", 86401],
    ["P", undefined],
    ["PT", undefined],
    ["soon", undefined],
  ];
  for (const [input, seconds] of cases) {
    assertEquals(intervalSeconds(input), seconds, String(input));
  }
});

Deno.test("validate: parameters are checked against the flow's signature", async () => {
  await using project = await tempProject({
    "flows/load.py": `from typing import Literal, Optional
from prefect import flow


@flow
def load(table: str, batch_size: int = 100, mode: Literal["full", "delta"] = "full"):
    pass


@flow
def flexible(table: str, **options):
    pass
`,
    "prefect/m.yaml": `name: parameters
deployments:
  - name: a
    entrypoint: flows/load.py:load
    work_pool: {name: p}
    parameters:
      table: events
      batch_sise: 10
      mode: partial
    schedules:
      - {cron: "0 1 * * *", timezone: UTC, active: true, slug: s1}
      - cron: "0 2 * * *"
        timezone: UTC
        active: true
        slug: s2
        parameters: {batch_size: "{{ $BATCH }}"}
  - name: b
    entrypoint: flows/load.py:load
    work_pool: {name: p}
    parameters: {batch_size: "ten"}
    schedules:
      - {cron: "0 1 * * *", timezone: UTC, active: true, slug: s1, parameters: {table: x}}
      - {cron: "0 2 * * *", timezone: UTC, active: true, slug: s2}
  - name: c
    entrypoint: flows/load.py:load
    work_pool: {name: p}
  - name: d
    entrypoint: flows/load.py:flexible
    work_pool: {name: p}
    parameters: {table: t, anything: 1}
`,
  });
  const cwd = Deno.cwd();
  Deno.chdir(project.dir);
  try {
    const result = await validate(validateOptions());
    assertEquals(
      result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`),
      [
        "8:7 error unknown-parameter",
        "9:13 error parameter-type",
        "20:30 error parameter-type",
        "23:9 error missing-parameter",
        "24:5 warning missing-parameter",
      ],
    );
    const [unknown, type, , missing, manual] = result.diagnostics.map((d) => d.message);
    assertStringIncludes(unknown, 'has no parameter "batch_sise". Did you mean "batch_size"?');
    assertStringIncludes(type, 'expects one of "full", "delta", not a string "partial"');
    assertStringIncludes(missing, 'would lack "table", required by the flow "load"');
    assertStringIncludes(manual, 'requires "table", which the deployment does not set');
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("validate: the project is named once; without a name, a warning says what that means", async () => {
  await using project = await tempProject({
    "flows/etl.py": FLOW,
    "prefect/a.yaml": manifest().replace("deployments:", "name: alpha\ndeployments:"),
    "prefect/b.yaml": manifest().replace("deployments:", "name: beta\ndeployments:")
      .replace("nightly", "hourly"),
    "unnamed/c.yaml": manifest(),
  });
  const cwd = Deno.cwd();
  Deno.chdir(project.dir);
  try {
    const mismatch = await validate(validateOptions({ paths: ["prefect"] }));
    assertEquals(brief(mismatch.diagnostics), [
      "1:7 error project-mismatch",
      "1:7 error project-mismatch",
    ]);
    assertStringIncludes(
      mismatch.diagnostics[0].message,
      '"alpha" here, "beta" in prefect/b.yaml:1:7',
    );
    assertEquals(mismatch.diagnostics[1].file, "prefect/b.yaml");

    const unnamed = await validate(validateOptions({ paths: ["unnamed"] }));
    assertEquals(brief(unnamed.diagnostics), ["1:1 warning implicit-project-name"]);
    const dir = project.dir.split("/").pop()!;
    assertStringIncludes(unnamed.diagnostics[0].message, `named after the directory ("${dir}")`);
    assertStringIncludes(unnamed.diagnostics[0].message, `managed-by:deploy.ts/${dir}`);
    assertEquals(unnamed.project, { name: dir, implicit: true });

    const strict = await validate(validateOptions({ paths: ["unnamed"], strict: true }));
    assertEquals(strict.valid, false);
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("validate: deploy.ts's ownership tags are its own to set", async () => {
  const ds = await diagnose({
    "m.yaml": manifest("    tags: [team, managed-by:deploy.ts/other, deploy.ts/env:prod]\n"),
  });
  assertEquals(brief(ds), ["5:18 error reserved-tag", "5:46 error reserved-tag"]);
});

Deno.test("validate: one run reports every independent problem; only what depends on a broken value is skipped", async () => {
  const flow = "flows/load.py";
  const source =
    "from prefect import flow\n\n@flow\ndef load(table: str, batch: int = 1):\n    pass\n";
  const cases: { name: string; manifest: string; expected: string[] }[] = [
    {
      name: "schema errors beside a timezone typo, a bad interval, a duplicate slug and two kinds",
      manifest: `deployments:
  - name: a
    entrypoint: ${flow}:load
    work_pool: {name: p}
    tags: foo
    parameters: {table: t}
    schedules:
      - {slug: s, cron: "0 6 * * *", timezone: Europe/Berln, active: yes}
      - {slug: s, interval: 1h, timezone: UTC, active: true}
      - {cron: "0 7 * * *", interval: 60, timezone: UTC, active: true}
`,
      expected: [
        "5:11 error type",
        "8:48 error invalid-timezone",
        "8:70 error type",
        "9:16 error duplicate-slug",
        "9:29 error invalid-interval",
        "10:9 error schedule-kind",
      ],
    },
    {
      name: "a misplaced key does not hide the entrypoint, schedules or parameters",
      manifest: `deployments:
  - name: a
    entrypoint: flows/missing.py:load
    work_pool: {name: p}
  - name: b
    entrypoint: ${flow}:load
    work_pool: {name: p}
    job_variables: {env: {A: b}}
    parameters: {tabel: t}
    schedules:
      - {cron: "0 0 31 2 *", timezone: UTC, active: true}
`,
      expected: [
        "3:17 error entrypoint-not-found",
        "8:5 error unknown-key",
        "9:18 error unknown-parameter",
        "11:9 error missing-parameter",
        "11:16 warning cron-never-fires",
      ],
    },
    {
      name: "steps of the wrong shape beside templates, step names and a legacy schedule",
      manifest: `pull:
- prefect.deployments.steps.git_clone:
  repository: https://example.com/repo.git
- prefect.deployments.steps.set_working_directory:
  directory: "{{ prefect.steps.git_clone.directory }}"
- prefect.projects.steps.pip_install_requirements: {}
deployments:
- name: a
  entrypoint: ${flow}:load
  parameters: {table: t}
  work_pool: {name: p}
  schedule:
    interval: 120
`,
      expected: [
        "2:3 error step-shape",
        "4:3 error step-shape",
        "5:14 error template-reference",
        "6:3 error removed-step",
        "12:3 warning legacy-schedule",
        "13:5 warning implicit-timezone",
        "13:5 warning implicit-active",
      ],
    },
    {
      name: "a top-level typo and a deployment without a name are checked as far as they go",
      manifest: `description: my project
deployments:
  - entrypoint: ${flow}:load
    parameters: {table: t, batch: many}
    schedules:
      - {cron: "0 25 * * *", timezone: utc, active: true}
`,
      expected: [
        "1:1 error unknown-key",
        "3:5 error missing-key",
        "3:5 warning no-work-pool",
        "4:35 error parameter-type",
        "6:16 error invalid-cron",
        "6:40 error invalid-timezone",
      ],
    },
    {
      name: "a typo'd key hides only the checks that look for that key",
      manifest: `deployments:
  - name: a
    entrypoint: ${flow}:load
    work_pool: {nme: p}
    paramters: {table: t}
    schedules:
      - {cronn: "0 6 * * *", timezone: Mars/Olympus, actve: true}
      - {slug: schedule-1, rrule: "FREQ=SOMETIMES", timezone: UTC, active: true}
`,
      expected: [
        "4:17 error unknown-key",
        "5:5 error unknown-key",
        "7:10 error unknown-key",
        "7:40 error invalid-timezone",
        "7:54 error unknown-key",
        "8:16 error duplicate-slug",
        "8:35 error invalid-rrule",
      ],
    },
    {
      name: "a broken schedule keeps its place: the next one is schedule-2, not schedule-1",
      manifest: `deployments:
  - name: a
    entrypoint: ${flow}:load
    parameters: {table: t}
    work_pool: {name: p}
    schedules:
      - oops
      - {cron: "0 6 * * *", timezone: UTC, active: true}
      - {slug: schedule-1, cron: "0 7 * * *", timezone: UTC, active: true}
`,
      expected: ["7:9 error type"],
    },
  ];
  for (const c of cases) {
    await using project = await tempProject({ [flow]: source, "m.yaml": c.manifest });
    const cwd = Deno.cwd();
    Deno.chdir(project.dir);
    try {
      const result = await validate(validateOptions({ paths: ["m.yaml"] }));
      const diagnostics = result.diagnostics.filter((d) => d.code !== "implicit-project-name");
      assertEquals(brief(diagnostics), c.expected, c.name);
      assertEquals(
        result.deployments.length,
        (c.manifest.match(/^\s*- (name|entrypoint):/gm) ?? []).length,
        `${c.name}: every declared deployment is counted`,
      );
    } finally {
      Deno.chdir(cwd);
    }
  }
});

Deno.test("validate reports offline what plan and apply would stop on or leave undone", async () => {
  const ds = await diagnose({
    "m.yaml": `build:
  - prefect_aws.deployments.steps.push_to_s3: {bucket: b, folder: f}
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool: {name: "{{ flow_run.pool }}"}
    paused: "{{ flow_run.paused }}"
    concurrency_limit: {limit: "{{ ctx.limit }}"}
    push:
      - prefect.deployments.steps.run_shell_script: {script: push image}
    schedules:
      - {slug: schedule-2, cron: "0 6 * * *", timezone: UTC, active: true}
      - {cron: "{{ ctx.cron }}", timezone: UTC, active: "{{ event.active }}"}
      - {cron: "0 7 * * *", timezone: UTC, active: true}
`,
  });
  // The build step is not one deploy.ts runs; the push step is (with --push-image).
  assertEquals(brief(ds), [
    "2:5 warning steps-not-run",
    "6:23 error template-type",
    "7:13 error template-type",
    "8:32 error template-type",
    "13:9 error duplicate-slug",
    "13:16 error template-type",
    "13:57 error template-type",
  ]);
  assertStringIncludes(
    ds[0].message,
    'deploy.ts does not run "prefect_aws.deployments.steps.push_to_s3" (it runs build_docker_image',
  );
  assertStringIncludes(
    ds[2].message,
    '"{{ flow_run.paused }}" is filled only when a flow runs, so `paused` would be the text',
  );
  assertStringIncludes(
    ds[4].message,
    'This schedule has no slug, so apply gives it "schedule-2" by its position, which the schedule at line 12 already has',
  );
});

Deno.test("timezones: IANA names and Prefect's aliases pass; anything else gets the likeliest zone", () => {
  for (const accepted of ["Europe/Berlin", "UTC", "US/Eastern", "Asia/Calcutta", "Etc/GMT+5"]) {
    assertEquals(timezoneProblem(accepted), undefined, accepted);
  }
  const cases: [string, string][] = [
    [
      "europe/berlin",
      'Timezone names are case-sensitive: write "Europe/Berlin", not "europe/berlin".',
    ],
    ["Europe/Berln", 'Unknown timezone "Europe/Berln". Did you mean "Europe/Berlin"?'],
    ["America/New York", 'Unknown timezone "America/New York". Did you mean "America/New_York"?'],
    ["Berlin", 'Unknown timezone "Berlin". Did you mean "Europe/Berlin"?'],
    ["Asia/Tokio", 'Unknown timezone "Asia/Tokio". Did you mean "Asia/Tokyo"?'],
    ["Mars/Olympus", 'Unknown timezone "Mars/Olympus"; use an IANA name such as "Europe/Berlin".'],
  ];
  for (const [name, message] of cases) assertEquals(timezoneProblem(name), message, name);
});

Deno.test("timezones: a zone ICU lists is taken as written, as building a DateTimeFormat would", () => {
  const listed = [...Intl.supportedValuesOf("timeZone"), "UTC"];
  assert(listed.length > 300, `${listed.length} zones`);
  for (const zone of listed) {
    const resolved =
      new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
    assertEquals(canonicalTimezone(zone), resolved, zone);
  }
  // Not listed, so resolved by ICU: a wrong case gets the listed spelling.
  assertEquals(canonicalTimezone("utc"), "UTC");
  assertEquals(canonicalTimezone("Mars/Olympus"), undefined);
});

Deno.test("parameters: a plain type accepts a value without a compiled validator only when Ajv would", () => {
  const types = ["string", "integer", "number", "boolean", "null", "array", "object", "nope"];
  const schemas: Record<string, unknown>[] = [
    ...types.map((type) => ({ type, title: "x", position: 0 })),
    { type: ["string", "null"] },
    { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "since" },
    { anyOf: [{ type: "integer" }, { anyOf: [{ type: "boolean" }] }] },
    { type: "string", format: "date-time", description: "when" },
    // Beyond plain types: always left to Ajv.
    { type: "integer", minimum: 0 },
    { type: "array", items: { type: "integer" } },
    { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
    { anyOf: [{ type: "string", maxLength: 1 }, { type: "null" }] },
    { $ref: "#/definitions/Thing" },
    { enum: ["a", "b"] },
    {},
  ];
  const values = [
    "text",
    "",
    0,
    7,
    -3,
    1.5,
    1e21,
    Infinity,
    -Infinity,
    NaN,
    true,
    false,
    null,
    [],
    [1, "a"],
    {},
    { a: 1 },
    undefined,
  ];
  let taken = 0;
  for (const schema of schemas) {
    // The validator the check falls back to; one Ajv cannot compile ("nope") is reported as
    // such, so the fast path must never take it.
    const valid = parameterValidator(schema, { Thing: { type: "string" } });
    for (const value of values) {
      if (!plainTypesAccept(schema, value)) continue;
      taken++;
      assert(
        !(valid instanceof Error) && valid(value),
        `${JSON.stringify(schema)} took ${String(value)}, which Ajv refuses`,
      );
    }
  }
  // It does decide the common cases: each plain type's own values, and the optional string.
  assert(taken >= 20, `${taken} decided without Ajv`);
  assert(plainTypesAccept(schemas[9], null) && plainTypesAccept(schemas[11], "2026-12-03"));
  assert(!plainTypesAccept({ type: "integer", minimum: 0 }, 5));
});

Deno.test("cron: an expression croniter accepts but can never fire is a warning", async () => {
  // Verdicts recorded from croniter's get_next in Prefect 3.8.8 (CroniterBadDateError = never).
  const never: [string, string | undefined][] = [
    ["0 0 31 2 *", "February has no 31st"],
    ["0 0 30,31 2 *", "February has no 30th or 31st"],
    ["0 0 31 4,6,9,11 *", "April, June, September and November have no 31st"],
    ["0 0 30-31 feb mon", "February has no 30th or 31st"],
    ["0 0 31 4,5 *", undefined],
    ["0 0 29 2 *", undefined],
    ["0 0 L 2 *", undefined],
    ["0 0 */31 2 *", undefined],
    ["@yearly", undefined],
  ];
  for (const [expression, reason] of never) {
    assertEquals(cronNeverFires(expression), reason, expression);
  }
  const ds = await diagnose({
    "m.yaml": manifest(
      "    schedules:\n      - {cron: '0 0 31 2 *', timezone: UTC, active: true}\n",
    ),
  });
  assertEquals(brief(ds), ["6:16 warning cron-never-fires"]);
  assertEquals(
    ds[0].message,
    'Cron "0 0 31 2 *" never fires: February has no 31st. Prefect accepts it and schedules no run.',
  );
});

Deno.test("validate: max_active_runs and catchup name the Prefect versions that took them", async () => {
  const ds = await diagnose({
    "m.yaml": manifest(
      "    schedules:\n      - {cron: '0 6 * * *', timezone: UTC, active: true, max_active_runs: 1, catchup: false}\n",
    ),
  });
  assertEquals(brief(ds), ["6:58 error unknown-key", "6:78 error unknown-key"]);
  assertStringIncludes(
    ds[0].message,
    "It was accepted by Prefect 3.0 (stored, never enforced) and removed in 3.1; later versions ignore it. To limit concurrent runs, set the deployment's `concurrency_limit`.",
  );
  assertStringIncludes(ds[1].message, "removed in 3.1; later versions ignore it. Delete it");
  for (const d of ds) assert(!d.message.includes("Prefect 2"), d.message);
});

Deno.test("validate: triggers are checked against the schema at their file:line:col", async () => {
  const ds = await diagnose({
    "m.yaml": manifest(
      "    triggers:\n" +
        "      - expec: [a.b]\n" +
        "      - type: compound\n" +
        "        require: all\n" +
        "        triggers:\n" +
        "          - {expect: [x], parameters: {since: 1}}\n" +
        "      - {type: metric, metric: {name: latenes, threshold: 1, operator: '>'}}\n" +
        "    sla:\n" +
        "      - {name: s, duraton: 60}\n",
    ),
  });
  assertEquals(brief(ds), [
    "6:9 error unknown-key",
    "10:27 error unknown-key",
    "11:39 error invalid-value",
    "13:19 error unknown-key",
  ]);
  assertStringIncludes(ds[0].message, 'Unknown key "expec" in a trigger. Did you mean "expect"?');
  assertStringIncludes(ds[1].message, "It belongs on the outer trigger");
  assertStringIncludes(ds[2].message, 'Did you mean "lateness"?');
  assertStringIncludes(ds[3].message, 'Unknown key "duraton" in an SLA. Did you mean "duration"?');
});

Deno.test("validate: what Prefect drops or rejects in triggers, every problem at once", async () => {
  const ds = await diagnose({
    "m.yaml": manifest(
      "    triggers:\n" +
        "      - {expect: [a], require: 2, parameters: {sincee: x, since: '{{ evnt.id }}'}}\n" +
        "      - {type: compound, require: 3, triggers: [{expect: [a]}, {posture: Proactive, within: 5}]}\n" +
        "      - {name: nightly__automation_1, schedule_after: soon}\n" +
        "      - {parameters: {broken: '{{ event.x '}}\n" +
        "      - {parameters: {jinja: '{{ event.payload | tojson }}'}}\n" +
        "    sla:\n" +
        "      - {name: s, duration: 60, within: 60}\n",
    ),
  });
  assertEquals(brief(ds), [
    "6:23 error trigger-key",
    "6:48 error unknown-parameter",
    "6:66 error template-reference",
    "7:35 error invalid-value",
    "7:93 error invalid-duration",
    "8:16 error duplicate-trigger-name",
    "8:55 error invalid-duration",
    "9:31 error template-syntax",
    "12:9 error sla-kind",
  ]);
  assertStringIncludes(ds[1].message, 'Did you mean "since"?');
  assertStringIncludes(ds[2].message, 'Did you mean "event"?');
});

Deno.test("validate: a parameter_openapi_schema Ajv cannot compile is an error, not a crash", async () => {
  await using project = await tempProject({
    "flows/f.py": "from prefect import flow\n\n\n@flow\ndef f(n: int = 1):\n    return n\n",
    "prefect/a.yaml": `name: t
deployments:
  - name: d
    entrypoint: flows/f.py:f
    parameters: {n: 1}
    work_pool: {name: p}
    parameter_openapi_schema:
      type: object
      properties: {n: {type: integr}}
`,
  });
  const cwd = Deno.cwd();
  Deno.chdir(project.dir);
  try {
    const result = await validate(validateOptions());
    assertEquals(
      result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`),
      ["5:21 error invalid-parameter-schema"],
    );
    assertStringIncludes(result.diagnostics[0].message, "type must be JSONType");
  } finally {
    Deno.chdir(cwd);
  }
});
