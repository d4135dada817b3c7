/**
 * The editor experience as VS Code's YAML extension gives it: a real `yaml-language-server`
 * (tests/yaml_language_server.ts) with this repository as the workspace and
 * `.vscode/settings.json` as its settings. Asserts the diagnostics on every example manifest and
 * overlay, on the corpus files `validate` accepts and on typical mistakes; completion where
 * people type; hover text rendered as Markdown; which schema applies to a `prefect.yaml` even
 * with SchemaStore's catalog in play; and that the README's set-up for another repository (the
 * schema's stable URL in a modeline or in settings) works.
 */
import { parse } from "yaml";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  type CompletionItem,
  type Diagnostic,
  YAML_LANGUAGE_SERVER,
  YamlLanguageServer,
} from "./yaml_language_server.ts";
import { schemaProblems } from "../deploy.ts";
import schema from "../schema/deployments.schema.json" with { type: "json" };

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const SETTINGS = JSON.parse(await Deno.readTextFile(`${ROOT}/.vscode/settings.json`));
const CORPUS = `${ROOT}/tests/fixtures/corpus/prefect-yaml`;
const GOLDEN: Record<string, { valid: boolean }> = JSON.parse(
  await Deno.readTextFile(`${ROOT}/tests/fixtures/corpus_golden.json`),
);
const SCHEMA_FILE = `file://${ROOT}/schema/deployments.schema.json`;
const ENVIRONMENT_FILE = `file://${ROOT}/schema/environment.schema.json`;
const JSR_PACKAGE = schema.$id.replace(/schema\/deployments\.schema\.json$/, "");

const uri = (path: string) => `file://${ROOT}/${path}`;

/** SchemaStore's entry for `prefect.yaml`, Prefect's own looser schema (a stand-in here). */
const SCHEMA_STORE_PREFECT = "https://schemastore.invalid/prefect.json";
const SCHEMA_STORE = {
  schemas: [{ name: "Prefect", fileMatch: ["prefect.yaml"], url: SCHEMA_STORE_PREFECT }],
};

/**
 * What VS Code fetches for the server: this version's schema files from JSR (the files
 * `deno publish` uploads, unreachable from here) and SchemaStore's schema for Prefect.
 */
function content(url: string): string | undefined {
  if (url === SCHEMA_STORE_PREFECT) return '{"type": "object"}';
  const path = url.startsWith(JSR_PACKAGE) ? url.slice(JSR_PACKAGE.length) : "";
  return /^schema\/\w+\.schema\.json$/.test(path)
    ? Deno.readTextFileSync(`${ROOT}/${path}`)
    : undefined;
}

/** A server on this workspace with SchemaStore's catalog in play, as in VS Code. */
const start = (settings: Record<string, unknown>) =>
  YamlLanguageServer.start({ root: ROOT, settings, content, schemaStore: SCHEMA_STORE });

/**
 * Errors and warnings as `line:character message` (0-based, as LSP counts). Information such as
 * "Unused anchor" is the server's own YAML hint, not the schema's.
 */
const brief = (ds: Diagnostic[]) =>
  ds.filter((d) => (d.severity ?? 1) <= 2)
    .map((d) => `${d.range.start.line}:${d.range.start.character} ${d.message}`).sort();

const labels = (items: CompletionItem[]) => items.map((i) => i.label);

/** Where `marker` (removed from the text) stands: the cursor of a completion or hover. */
function cursor(text: string, marker = "|"): { text: string; line: number; character: number } {
  const at = text.indexOf(marker);
  const before = text.slice(0, at).split("\n");
  return {
    text: text.slice(0, at) + text.slice(at + marker.length),
    line: before.length - 1,
    character: before[before.length - 1].length,
  };
}

Deno.test("lsp: the server is the version deno.json pins", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  assertEquals(config.imports["yaml-language-server"], YAML_LANGUAGE_SERVER);
  await using server = await start(SETTINGS);
  assertEquals(`npm:yaml-language-server@${server.version}`, YAML_LANGUAGE_SERVER);
});

Deno.test("lsp: every example manifest and overlay gets our schema and no diagnostic", async () => {
  await using server = await start(SETTINGS);
  const files = [
    ...[...Deno.readDirSync(`${ROOT}/prefect`)].map((e) => `prefect/${e.name}`),
    ...[...Deno.readDirSync(`${ROOT}/prefect/environments`)].map((e) =>
      `prefect/environments/${e.name}`
    ),
  ].filter((p) => p.endsWith(".yaml")).sort();
  assert(files.length >= 4, `examples found: ${files}`);
  for (const path of files) {
    const text = await Deno.readTextFile(`${ROOT}/${path}`);
    assertEquals(brief(await server.open(uri(path), text)), [], path);
    const expected = path.includes("/environments/") ? ENVIRONMENT_FILE : SCHEMA_FILE;
    assertEquals((await server.schemasOf(uri(path))).map((s) => s.uri), [expected], path);
  }
  // Without the settings, each file's modeline gives it the same schema.
  await using bare = await start({});
  for (const path of files) {
    const text = await Deno.readTextFile(`${ROOT}/${path}`);
    assert(text.startsWith("# yaml-language-server: $schema=../"), `${path} has the modeline`);
    assertEquals(brief(await bare.open(uri(path), text)), [], path);
    const expected = path.includes("/environments/") ? ENVIRONMENT_FILE : SCHEMA_FILE;
    assertEquals((await bare.schemasOf(uri(path))).map((s) => s.uri), [expected], path);
  }
});

Deno.test("lsp: no diagnostic on the corpus files validate accepts, opened as prefect.yaml", async () => {
  await using server = await start(SETTINGS);
  const accepted = Object.entries(GOLDEN).filter(([, v]) => v.valid).map(([name]) => name);
  assertEquals(accepted.length, 46);
  for (const name of accepted) {
    // Each is a real project's prefect.yaml: open it under that name, in a folder of its own.
    const path = `corpus/${name.replace(/\.yaml$/, "")}/prefect.yaml`;
    const text = await Deno.readTextFile(`${CORPUS}/${name}`);
    assertEquals(brief(await server.open(uri(path), text)), [], name);
    assertEquals((await server.schemasOf(uri(path))).map((s) => s.uri), [SCHEMA_FILE], name);
    server.close(uri(path));
  }
});

/** Typical mistakes and what the editor shows: `line:character message`, 0-based. */
const MISTAKES: { name: string; text: string; expected: string[]; sameAsValidate?: boolean }[] = [
  {
    name: "what `prefect init` leaves: null name and entrypoint",
    text: "deployments:\n  - name: null\n    entrypoint: null\n",
    expected: [
      '1:10 Incorrect type. Expected "string".',
      '2:16 Incorrect type. Expected "string".',
    ],
  },
  {
    name: "names and entrypoints Prefect refuses",
    text: "deployments:\n  - name: a/b\n    entrypoint: flows/etl.py\n",
    expected: [
      "1:10 A deployment name cannot contain `/`, `%`, `&`, `>` or `<`.",
      "2:16 An entrypoint is `path/to/file.py:function`, `package.module:function` or " +
      "`package.module.function`.",
    ],
  },
  {
    name: "a schedule with two kinds, one with none, one that is a string",
    text: `deployments:
  - name: a
    entrypoint: flows/etl.py:etl
    schedules:
      - cron: "0 * * * *"
        interval: 3600
        timezone: UTC
      - timezone: UTC
        active: true
      - "0 * * * *"
`,
    expected: [
      "5:8 A schedule takes exactly one of `cron`, `interval` or `rrule`.",
      "7:8 A schedule needs one of `cron`, `interval` or `rrule`.",
      '9:8 A schedule is a mapping such as `{cron: "0 6 * * *", timezone: UTC, active: true}`.',
      '9:8 Incorrect type. Expected "Schedule".',
    ],
  },
  {
    name: "the legacy `schedule: {}` that `prefect init` writes is no schedule",
    text: "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    schedule: {}\n",
    expected: [],
  },
  {
    name: "a timezone in the wrong case; aliases and templates pass",
    text: `deployments:
  - name: a
    entrypoint: flows/etl.py:etl
    schedules:
      - {cron: "0 * * * *", timezone: europe/berlin}
      - {cron: "0 * * * *", timezone: US/Eastern}
      - {cron: "0 * * * *", timezone: "{{ $DEPLOY_TZ }}"}
`,
    expected: [
      "4:38 Timezone names are case-sensitive, each part capitalised: `Europe/Berlin`, " +
      "`America/New_York`, `US/Eastern`, `UTC`.",
    ],
  },
  {
    name: "keys in the wrong place and Prefect 2 keys: validate's own messages",
    text: `work_pool: {name: pool}
deployments:
  - name: a
    entrypoint: flows/etl.py:etl
    job_variables: {image: x}
    is_schedule_active: true
    work_pool:
      name: pool
      image: x
    schedules:
      - {cron: "0 * * * *", catchup: false}
`,
    expected: [
      '0:0 Unknown key "work_pool" in the manifest\'s top level. It belongs in each deployment; ' +
      "share it through an anchor under `definitions:`.",
      '10:28 Unknown key "catchup" in a schedule. It was accepted by Prefect 3.0 (stored, never acted on) and removed in 3.1; later versions ignore it. Delete it: Prefect does not backfill missed runs from a schedule.',
      '4:4 Unknown key "job_variables" in a deployment. It belongs under `work_pool:`.',
      '5:4 Unknown key "is_schedule_active" in a deployment. It is a Prefect 2 key; set ' +
      "`active:` on each schedule.",
      '8:6 Unknown key "image" in `work_pool`. It belongs under `job_variables:`.',
    ],
    sameAsValidate: true,
  },
  {
    name: "a typo: the editor can only say not allowed (validate adds did-you-mean)",
    text: "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    descripton: x\n",
    expected: ["3:4 Property descripton is not allowed."],
  },
  {
    name: "step arguments not indented under the step",
    text: `pull:
  - prefect.deployments.steps.git_clone:
    repository: https://example.com/repo.git
    branch: main
deployments: []
`,
    expected: [
      "1:4 Object has more properties than limit of 1.",
      "1:40 Give `prefect.deployments.steps.git_clone` its arguments as a mapping, indented " +
      "under its key.",
      "2:4 A step is a mapping with exactly one key, the step function's import path; indent " +
      "its arguments under that key.",
      "3:4 A step is a mapping with exactly one key, the step function's import path; indent " +
      "its arguments under that key.",
    ],
  },
  {
    name: "removed, unknown and unqualified step names; a bad step id",
    text: `pull:
  - prefect.projects.steps.git_clone_project: {repository: x}
  - prefect.deployments.steps.git_clone_project: {repository: x}
  - git_clone: {repository: x}
  - my_company.steps.fetch: {id: "has space"}
deployments: []
`,
    expected: [
      "1:4 The `prefect.projects.steps` namespace was removed in Prefect 2.11; write " +
      "`prefect.deployments.steps.<name>`.",
      "2:4 Prefect has no step of this name: its own are `git_clone`, `set_working_directory`, " +
      "`run_shell_script`, `pip_install_requirements`, `pull_from_remote_storage` and " +
      "`pull_with_block` in `prefect.deployments.steps`.",
      "3:4 A step is a mapping with exactly one key, the step function's import path; indent " +
      "its arguments under that key.",
      "4:33 A step id may hold only letters, digits, `_` and `-`, so that `{{ id.key }}` can " +
      "refer to it.",
    ],
  },
  {
    name: "an overlay with a manifest key",
    text: "defaults:\n  name_prefix: dev-\n  entrypoint: x\n",
    expected: ["2:2 Property entrypoint is not allowed."],
  },
];

Deno.test("lsp: typical mistakes get the expected diagnostics", async () => {
  await using server = await start(SETTINGS);
  for (const [i, mistake] of MISTAKES.entries()) {
    const path = mistake.text.startsWith("defaults:")
      ? `prefect/environments/mistake-${i}.yaml`
      : `prefect/mistake-${i}.yaml`;
    const diagnostics = await server.open(uri(path), mistake.text);
    assertEquals(brief(diagnostics), [...mistake.expected].sort(), mistake.name);
    assert(diagnostics.every((d) => d.severity === 1), `${mistake.name}: all are errors`);
    if (mistake.sameAsValidate) {
      const messages = schemaProblems(parse(mistake.text)).map((p) => p.message).sort();
      assertEquals(messages, mistake.expected.map((e) => e.replace(/^\d+:\d+ /, "")).sort());
    }
  }
});

/** Completion at `|` in a document under prefect/. */
async function complete(server: YamlLanguageServer, path: string, marked: string) {
  const { text, line, character } = cursor(marked);
  await server.open(uri(path), text);
  return await server.completion(uri(path), { line, character });
}

Deno.test("lsp: completion at the top level, in a deployment, work pool, schedule and steps", async () => {
  await using server = await start(SETTINGS);

  const top = await complete(server, "prefect/c-top.yaml", "|\n");
  assertEquals(labels(top).sort(), [
    "build",
    "definitions",
    "deploy.ts manifest",
    "deployments",
    "name",
    "prefect-version",
    "pull",
    "push",
  ]);

  const item = await complete(server, "prefect/c-item.yaml", "deployments:\n  - |\n");
  const snippet = item.find((i) => i.label === "deployment");
  assert(snippet, `a deployment snippet among ${labels(item)}`);
  assertStringIncludes(snippet.insertText ?? "", "slug: ${5:daily}");

  const deployment = await complete(
    server,
    "prefect/c-deployment.yaml",
    "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    |\n",
  );
  for (const key of ["work_pool", "schedules", "parameters", "tags", "pull", "concurrency_limit"]) {
    assert(labels(deployment).includes(key), `${key} offered in a deployment`);
  }
  for (const misplaced of ["job_variables", "work_queue_name", "cron", "is_schedule_active"]) {
    assert(!labels(deployment).includes(misplaced), `${misplaced} not offered in a deployment`);
  }
  const pool = deployment.find((i) => i.label === "work_pool")!;
  assertEquals(pool.documentation, {
    kind: "markdown",
    value: "Where the deployment's runs execute: the pool, its queue, and job variables.",
  });

  const workPool = await complete(
    server,
    "prefect/c-pool.yaml",
    "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    work_pool:\n      |\n",
  );
  assertEquals(labels(workPool).filter((l) => !l.includes(" ")).sort(), [
    "job_variables",
    "name",
    "work_queue_name",
  ]);

  const schedulesValue = await complete(
    server,
    "prefect/c-schedules.yaml",
    "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    schedules: |\n",
  );
  const listSnippet = schedulesValue.find((i) => i.label === "cron schedule");
  assert(listSnippet, `a schedule snippet at schedules: among ${labels(schedulesValue)}`);
  // At `schedules:` a list belongs: the snippet inserts one item, with a slug.
  assertStringIncludes(listSnippet.insertText ?? "", "\n  - slug: ${1:daily}\n    cron: ");

  const inSchedule = await complete(
    server,
    "prefect/c-schedule.yaml",
    "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    schedules:\n      - |\n",
  );
  for (const key of ["cron", "interval", "rrule", "timezone", "active", "slug", "anchor_date"]) {
    assert(labels(inSchedule).includes(key), `${key} offered in a schedule`);
  }
  assert(!labels(inSchedule).includes("catchup"), "Prefect 2's catchup not offered");
  const cronSnippet = inSchedule.find((i) => i.label === "cron schedule");
  assertStringIncludes(cronSnippet?.insertText ?? "", "slug: ${1:daily}\n  cron: ${2:0 6 * * *}");

  const steps = await complete(
    server,
    "prefect/c-steps.yaml",
    "pull:\n  - |\ndeployments: []\n",
  );
  for (const step of Object.keys(schema.definitions.step.properties)) {
    assert(labels(steps).includes(step), `${step} offered in a pull step list`);
  }
  const args = await complete(
    server,
    "prefect/c-args.yaml",
    "pull:\n  - prefect.deployments.steps.git_clone:\n      |\ndeployments: []\n",
  );
  for (const key of ["repository", "branch", "access_token", "id", "requires"]) {
    assert(labels(args).includes(key), `${key} offered in git_clone's arguments`);
  }
});

Deno.test("lsp: hovers render the schema's Markdown", async () => {
  await using server = await start(SETTINGS);
  const path = "prefect/refinement.yaml";
  const text = await Deno.readTextFile(`${ROOT}/${path}`);
  await server.open(uri(path), text);
  const at = (key: string) => {
    const lines = text.split("\n");
    const line = lines.findIndex((l) => l.trimStart().startsWith(`${key}:`));
    return { line, character: lines[line].indexOf(key) + 1 };
  };
  const entrypoint = await server.hover(uri(path), at("entrypoint"));
  assertEquals(entrypoint?.contents, {
    kind: "markdown",
    value: "#### Entrypoint\n\n" + schema.definitions.deployment.properties.entrypoint
      .markdownDescription +
      "\n\nExample:\n\n```yaml\nflows/etl.py:etl\n```\n\n" +
      `Source: [deployments.schema.json](${SCHEMA_FILE})`,
  });
  const timezone = await server.hover(uri(path), at("timezone"));
  const value = (timezone?.contents as { value: string }).value;
  assertStringIncludes(
    value,
    "#### Timezone\n\nIANA timezone the schedule is read in, e.g. `Europe",
  );
  assert(!value.includes("\\`"), `backticks are Markdown, not escaped text: ${value}`);
});

Deno.test("lsp: a prefect.yaml gets our schema, not the one SchemaStore maps to the name", async () => {
  const text = "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    cronn: x\n";
  // The settings before this repository mapped the name: SchemaStore's schema, no error.
  await using old = await start({
    "yaml.schemas": { "./schema/deployments.schema.json": ["prefect/*.yaml"] },
  });
  assertEquals(brief(await old.open(uri("prefect.yaml"), text)), []);
  assertEquals((await old.schemasOf(uri("prefect.yaml"))).map((s) => s.uri), [
    SCHEMA_STORE_PREFECT,
  ]);

  await using server = await start(SETTINGS);
  assertEquals(brief(await server.open(uri("prefect.yaml"), text)), [
    "3:4 Property cronn is not allowed.",
  ]);
  assertEquals((await server.schemasOf(uri("prefect.yaml"))).map((s) => s.uri), [SCHEMA_FILE]);
});

/** The README's set-up for another repository: its JSON settings block and its modelines. */
async function readmeSetup() {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const section = readme.slice(readme.indexOf("### Completion in another repository"));
  const settings = JSON.parse(section.match(/```json\n([\s\S]*?)```/)![1]);
  const modelines = [...section.matchAll(/^# yaml-language-server: \$schema=(\S+)$/gm)]
    .map((m) => m[1]);
  return { settings, modelines };
}

Deno.test("lsp: the README's stable URL works in a modeline and in settings", async () => {
  const { settings, modelines } = await readmeSetup();
  const manifest = "deployments:\n  - name: a\n    entrypoint: flows/etl.py:etl\n    cronn: x\n";
  const overlay = "defaults:\n  name_prefix: dev-\n  entrypoint: x\n";
  assertEquals(modelines, [schema.$id, `${JSR_PACKAGE}schema/environment.schema.json`]);

  // Modelines alone, in a repository without settings.
  await using bare = await start({});
  const [manifestLine, overlayLine] = modelines.map((m) =>
    `# yaml-language-server: $schema=${m}\n`
  );
  assertEquals(brief(await bare.open(uri("elsewhere/deploy.yaml"), manifestLine + manifest)), [
    "4:4 Property cronn is not allowed.",
  ]);
  assertEquals(brief(await bare.open(uri("elsewhere/dev.yaml"), overlayLine + overlay)), [
    "3:2 Property entrypoint is not allowed.",
  ]);
  // Offline, with the schema copied into the repository, a modeline can name its part.
  const relative = "# yaml-language-server: $schema=../../schema/deployments.schema.json" +
    "#/definitions/environment\n";
  assertEquals(brief(await bare.open(uri("prefect/environments/x.yaml"), relative + overlay)), [
    "3:2 Property entrypoint is not allowed.",
  ]);
  // The overlay schema refers to the manifest schema next to it, on JSR too.
  assertEquals(bare.contentRequests.sort(), modelines.sort());

  // The settings block alone, no modelines.
  await using server = await start(settings);
  assertEquals(brief(await server.open(uri("prefect.yaml"), manifest)), [
    "3:4 Property cronn is not allowed.",
  ]);
  assertEquals(brief(await server.open(uri("prefect/etl.yaml"), manifest)), [
    "3:4 Property cronn is not allowed.",
  ]);
  assertEquals(brief(await server.open(uri("prefect/environments/dev.yaml"), overlay)), [
    "2:2 Property entrypoint is not allowed.",
  ]);
  const completion = await complete(server, "prefect/c.yaml", "deployments:\n  - |\n");
  assert(labels(completion).includes("deployment"), "completion from the URL's schema");
});
