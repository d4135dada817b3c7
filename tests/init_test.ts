/**
 * `deploy init` in temporary git repositories, run with the compiled binary's permissions:
 * an empty one, one with flows under several folders, one deployed with prefect.yaml; then
 * `validate --strict` on what it wrote. Existing files are never replaced without a yes.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";
import { parse as parseJsonc } from "jsonc-parser";
import { parse as parseYaml } from "yaml";
import { findFlows, modeline, relativePath, splitPrefectYaml } from "../lib/init.ts";
import schema from "../schema/deployments.schema.json" with { type: "json" };

async function gitRepo(files: Record<string, string>) {
  const project = await tempProject(files);
  const git = await new Deno.Command("git", { args: ["init", "-q"], cwd: project.dir }).output();
  assert(git.success, "git init");
  return project;
}

const deploy = (args: string[], cwd: string): Promise<CliResult> =>
  runDeploy(args, { cwd, permissions: BINARY_PERMISSIONS });

async function files(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (sub: string) => {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const path = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.name === ".git") continue;
      if (entry.isDirectory) await walk(path);
      else found.push(path);
    }
  };
  await walk("");
  return found.sort();
}

const read = (dir: string, path: string) => Deno.readTextFileSync(`${dir}/${path}`);

Deno.test("init: an empty git repository gets an example flow that validates --strict", async () => {
  await using repo = await gitRepo({});
  const result = await deploy(["init", "--project", "analytics"], repo.dir);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(await files(repo.dir), [
    ".vscode/settings.json",
    "flows/hello.py",
    "prefect/hello.yaml",
    "schema/deployments.schema.json",
  ]);
  assertMatch(result.stdout, /^created\s+prefect\/hello\.yaml\s+flow "hello"$/m);
  const manifest = read(repo.dir, "prefect/hello.yaml");
  assertEquals(manifest.split("\n")[0], modeline("prefect"));
  assertEquals(parseYaml(manifest).name, "analytics");
  assertEquals(JSON.parse(read(repo.dir, "schema/deployments.schema.json")), schema);
  // The modeline resolves, from the manifest's directory, to the schema init wrote.
  const target = manifest.split("\n")[0].split("$schema=")[1];
  assertEquals(
    read(`${repo.dir}/prefect`, target),
    read(repo.dir, "schema/deployments.schema.json"),
  );
  const strict = await deploy(["validate", "--strict"], repo.dir);
  assertEquals(strict.code, 0, strict.stderr);
  assertStringIncludes(strict.stdout, "Valid: 1 deployment in 1 file, 0 errors, 0 warnings.");
  assertStringIncludes(result.stderr, "Valid: 1 deployment in 1 file");
});

const ETL = `import prefect
from datetime import datetime


@prefect.flow(name="nightly-etl")
def etl(day: datetime, tables: list[str], limit: int = 10, dry_run: bool = False):
    """Loads the day's tables."""


def helper():
    pass
`;
const REPORTS = `from prefect import flow as prefect_flow, task


@task
def render():
    pass


@prefect_flow
async def weekly_report(recipients: list[str] | None = None, mode: str = "pdf"):
    pass


@prefect_flow(name=f"report-{1}")
def dynamic():
    pass
`;

Deno.test("init: flows under any folder get one starter manifest each, --strict clean", async () => {
  await using repo = await gitRepo({
    "src/pipelines/etl.py": ETL,
    "jobs/reports/weekly.py": REPORTS,
    "tests/test_etl.py": "from prefect import flow\n\n@flow\ndef test_flow():\n    pass\n",
    ".venv/lib/site.py": "from prefect import flow\n\n@flow\ndef vendored():\n    pass\n",
    "README.md": "# analytics\n",
  });
  const result = await deploy(["init", "--work-pool", "k8s"], repo.dir);
  assertEquals(result.code, 0, result.stderr);
  const written = await files(repo.dir);
  assert(written.includes("prefect/nightly-etl.yaml"), written.join(", "));
  assert(written.includes("prefect/weekly-report.yaml"), written.join(", "));
  assert(!written.includes("flows/hello.py"), "no example flow when flows exist");
  assertEquals(written.filter((f) => f.startsWith("prefect/")).length, 2);
  assertMatch(result.stderr, /Skipped jobs\/reports\/weekly\.py:dynamic \(line 15\): .*flow_name/);

  const etl = parseYaml(read(repo.dir, "prefect/nightly-etl.yaml"));
  assertEquals(etl.deployments, [{
    name: "default",
    entrypoint: "src/pipelines/etl.py:etl",
    work_pool: { name: "k8s" },
    parameters: { day: "2026-01-01T00:00:00Z", tables: [] },
  }]);
  assertEquals(etl.name, repo.dir.split("/").pop(), "project: the repository's directory");
  const report = parseYaml(read(repo.dir, "prefect/weekly-report.yaml"));
  assertEquals(report.deployments[0].entrypoint, "jobs/reports/weekly.py:weekly_report");
  assertEquals(report.deployments[0].parameters, undefined, "no required parameters");

  const strict = await deploy(["validate", "--strict"], repo.dir);
  assertEquals(strict.code, 0, strict.stderr + strict.stdout);
  assertStringIncludes(strict.stdout, "Valid: 2 deployments in 2 files, 0 errors, 0 warnings.");

  // A second run finds everything declared and the same schema and settings: writes nothing.
  const before = await Promise.all(written.map((f) => Deno.stat(`${repo.dir}/${f}`)));
  const again = await deploy(["init", "--work-pool", "k8s"], repo.dir);
  assertEquals(again.code, 0, again.stderr);
  assertStringIncludes(again.stderr, "Every flow found is declared in prefect/ already.");
  assertMatch(again.stdout, /^unchanged\s+schema\/deployments\.schema\.json/m);
  assertMatch(again.stdout, /^unchanged\s+\.vscode\/settings\.json/m);
  const after = await Promise.all(written.map((f) => Deno.stat(`${repo.dir}/${f}`)));
  assertEquals(after.map((s) => s.mtime), before.map((s) => s.mtime));
});

Deno.test("init: never replaces a differing file without --yes; settings are merged", async () => {
  const settings = `{
  // the team's editor settings
  "editor.rulers": [100],
}
`;
  await using repo = await gitRepo({
    "flows/etl.py": "from prefect import flow\n\n@flow\ndef etl():\n    pass\n",
    "schema/deployments.schema.json": '{"old": true}\n',
    ".vscode/settings.json": settings,
  });
  const refused = await deploy(["init"], repo.dir);
  assertEquals(refused.code, 1);
  assertMatch(
    refused.stderr,
    /^error: init would replace 2 file\(s\) that differ from what it writes: schema\/deployments\.schema\.json, \.vscode\/settings\.json\. Nothing was written; rerun with --yes/m,
  );
  assertEquals(await files(repo.dir), [
    ".vscode/settings.json",
    "flows/etl.py",
    "schema/deployments.schema.json",
  ]);
  assertEquals(read(repo.dir, ".vscode/settings.json"), settings);

  const confirmed = await deploy(["init", "--yes"], repo.dir);
  assertEquals(confirmed.code, 0, confirmed.stderr);
  assertMatch(confirmed.stdout, /^replaced\s+schema\/deployments\.schema\.json/m);
  assertMatch(confirmed.stdout, /^created\s+prefect\/etl\.yaml/m);
  const merged = read(repo.dir, ".vscode/settings.json");
  assertStringIncludes(merged, "// the team's editor settings", "comments survive");
  assertEquals(parseJsonc(merged, [], { allowTrailingComma: true }), {
    "editor.rulers": [100],
    "yaml.schemas": { "./schema/deployments.schema.json": ["prefect/*.yaml", "prefect/*.yml"] },
  });
});

const PREFECT_YAML = `# Our deployments
name: analytics
prefect-version: 3.4.0

definitions:
  pools: &pool
    name: process-pool

pull:
  - prefect.deployments.steps.set_working_directory:
      directory: /opt/app

deployments:
  - &base
    name: nightly   # the main one
    entrypoint: flows/etl.py:etl
    work_pool: *pool
    schedules:
      - cron: "0 3 * * *"
        timezone: UTC
        active: true
  - <<: *base
    name: hourly
    schedules: []
  - name: weekly
    entrypoint: flows/report.py:report
    work_pool: *pool
`;

Deno.test("init: with a prefect.yaml, says it loads as it is; --split writes one file per flow", async () => {
  await using repo = await gitRepo({
    "prefect.yaml": PREFECT_YAML,
    "flows/etl.py": "from prefect import flow\n\n@flow\ndef etl():\n    pass\n",
    "flows/report.py":
      'from prefect import flow\n\n@flow(name="weekly-report")\ndef report():\n    pass\n',
  });
  const plain = await deploy(["init"], repo.dir);
  assertEquals(plain.code, 0, plain.stderr);
  assertMatch(plain.stderr, /^prefect\.yaml loads as it is: Valid: 3 deployments in 1 file/m);
  assertStringIncludes(plain.stderr, "deploy init --split");
  assertEquals(await files(repo.dir), [
    ".vscode/settings.json",
    "flows/etl.py",
    "flows/report.py",
    "prefect.yaml",
    "schema/deployments.schema.json",
  ]);
  const globs = JSON.parse(read(repo.dir, ".vscode/settings.json"))["yaml.schemas"];
  assertEquals(globs["./schema/deployments.schema.json"], [
    "prefect/*.yaml",
    "prefect/*.yml",
    "prefect.yaml",
  ]);

  const split = await deploy(["init", "--split"], repo.dir);
  assertEquals(split.code, 0, split.stderr);
  assertMatch(split.stdout, /^created\s+prefect\/etl\.yaml\s+flow "etl", from prefect\.yaml$/m);
  assertMatch(split.stdout, /^created\s+prefect\/weekly-report\.yaml/m);
  assertEquals(read(repo.dir, "prefect.yaml"), PREFECT_YAML, "prefect.yaml is left as it is");
  const etl = read(repo.dir, "prefect/etl.yaml");
  assertStringIncludes(etl, "# Our deployments");
  assertStringIncludes(etl, "# the main one");
  const etlData = parseYaml(etl, { merge: true });
  assertEquals(etlData.deployments.map((d: { name: string }) => d.name), ["nightly", "hourly"]);
  assertEquals(etlData.pull, [{
    "prefect.deployments.steps.set_working_directory": { directory: "/opt/app" },
  }]);
  // The anchor on the first deployment went with it; the weekly file's alias to the pool stays.
  const weekly = parseYaml(read(repo.dir, "prefect/weekly-report.yaml"), { merge: true });
  assertEquals(weekly.deployments, [{
    name: "weekly",
    entrypoint: "flows/report.py:report",
    work_pool: { name: "process-pool" },
  }]);
  const before = await deploy(["validate", "prefect.yaml", "--format", "json"], repo.dir);
  const after = await deploy(["validate", "--format", "json"], repo.dir);
  assertEquals(after.code, before.code, after.stderr);
  const specs = (r: CliResult) =>
    JSON.parse(r.stdout).deployments.map((d: { flow: string; name: string; spec: unknown }) => [
      d.flow,
      d.name,
      d.spec,
    ]).sort();
  assertEquals(specs(after), specs(before), "the split declares exactly what prefect.yaml did");
});

Deno.test("init: an alias whose anchor went to another file becomes a copy", () => {
  const text = `deployments:
  - name: a
    entrypoint: flows/a.py:a
    parameters: &shared {x: 1}
  - name: b
    entrypoint: flows/b.py:b
    parameters: *shared
`;
  const parts = splitPrefectYaml(text, (d) => String(d.entrypoint).split(":")[1], {
    project: "p",
    manifestDir: "prefect",
  });
  assertEquals([...parts.keys()], ["a", "b"]);
  const b = parseYaml(parts.get("b")!);
  assertEquals(b.deployments, [{ name: "b", entrypoint: "flows/b.py:b", parameters: { x: 1 } }]);
  assertEquals(b.name, "p");
});

Deno.test("init: relative paths for the modeline from nested manifest directories", () => {
  assertEquals(
    relativePath("prefect", "schema/deployments.schema.json"),
    "../schema/deployments.schema.json",
  );
  assertEquals(
    relativePath("deploy/prefect", "schema/deployments.schema.json"),
    "../../schema/deployments.schema.json",
  );
  assertEquals(
    relativePath(".", "schema/deployments.schema.json"),
    "schema/deployments.schema.json",
  );
});

Deno.test("init: findFlows reads decorators, aliases and names without running Python", async () => {
  await using repo = await tempProject({ "a/b/c.py": REPORTS, "node_modules/x/y.py": ETL });
  const cwd = Deno.cwd();
  Deno.chdir(repo.dir);
  try {
    const found = findFlows();
    assertEquals(found.map((f) => [f.file, f.function, f.flowName]), [
      ["a/b/c.py", "weekly_report", "weekly-report"],
      ["a/b/c.py", "dynamic", undefined],
    ]);
  } finally {
    Deno.chdir(cwd);
  }
});
