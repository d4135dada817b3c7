/**
 * The pre-commit hook (.pre-commit-hooks.yaml) tried for real: pip-installed pre-commit
 * (.venv/pre-commit-<version>, from tests/pre-commit-requirements.txt) runs `pre-commit
 * try-repo` on this repository inside a temporary git repository, on its staged files.
 */
import { parse as parseYaml } from "yaml";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { REPO_ROOT, tempProject } from "./helpers.ts";
import { ensureVenv } from "./prefect_server.ts";

const REQUIREMENTS = `${REPO_ROOT}tests/pre-commit-requirements.txt`;
const VERSION = Deno.readTextFileSync(REQUIREMENTS).match(/^pre-commit==(\S+)$/m)![1];

const FLOW = "from prefect import flow\n\n\n@flow\ndef etl(limit: int = 1):\n    return limit\n";
const MANIFEST = `name: hooked
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool}
    schedules:
      - {cron: "0 3 * * *", timezone: UTC, active: true}
`;

async function git(cwd: string, ...args: string[]) {
  const output = await new Deno.Command("git", {
    args: ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, `git ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
}

Deno.test("pre-commit: the hook is a script hook on manifests only", () => {
  const hooks = parseYaml(Deno.readTextFileSync(`${REPO_ROOT}.pre-commit-hooks.yaml`));
  assertEquals(hooks.length, 1);
  const [hook] = hooks;
  assertEquals([hook.id, hook.language, hook.entry], [
    "deploy-validate",
    "script",
    "tools/pre_commit.sh",
  ]);
  const files = new RegExp(hook.files);
  for (const path of ["prefect.yaml", "sub/prefect.yml", "prefect/etl.yaml", "prefect/a.yml"]) {
    assert(files.test(path), `${path} is a manifest`);
  }
  for (const path of ["prefect/environments/dev.yaml", ".github/workflows/ci.yml", "app.yaml"]) {
    assert(!files.test(path), `${path} is not a manifest`);
  }
});

Deno.test("pre-commit: try-repo passes good manifests and stops a broken one at its line", async () => {
  const bin = await ensureVenv(
    `${REPO_ROOT}.venv/pre-commit-${VERSION}`,
    REQUIREMENTS,
    `pre-commit ${VERSION}`,
  );
  await using repo = await tempProject({
    "flows/etl.py": FLOW,
    "prefect/etl.yaml": MANIFEST,
    "config/app.yaml": "not: [a, manifest\n",
  });
  await using home = await tempProject({});
  await git(repo.dir, "init", "-q");
  await git(repo.dir, "add", "-A");
  const tryRepo = async () => {
    const output = await new Deno.Command(`${bin}/pre-commit`, {
      args: ["try-repo", REPO_ROOT, "deploy-validate", "--color", "never"],
      cwd: repo.dir,
      env: { PRE_COMMIT_HOME: home.dir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) +
      new TextDecoder().decode(output.stderr);
    return { code: output.code, text };
  };

  // The broken YAML outside prefect/ is not a manifest: the hook does not see it.
  const good = await tryRepo();
  assertEquals(good.code, 0, good.text);
  assertMatch(good.text, /^deploy validate\.+Passed$/m);

  await Deno.writeTextFile(`${repo.dir}/prefect/etl.yaml`, MANIFEST.replace("cron:", "cronn:"));
  await Deno.writeTextFile(`${repo.dir}/prefect.yaml`, MANIFEST.replace("etl.py", "gone.py"));
  await git(repo.dir, "add", "-A");
  const bad = await tryRepo();
  assertEquals(bad.code, 1, bad.text);
  assertMatch(bad.text, /^deploy validate\.+Failed$/m);
  assertStringIncludes(
    bad.text,
    'prefect/etl.yaml:7:10: error: Unknown key "cronn" in a schedule. Did you mean "cron"?',
  );
  assertMatch(bad.text, /^prefect\.yaml:4:17: error: .*flows\/gone\.py/m);
  // Both files in one run (require_serial): the checks across files see them together.
  assertStringIncludes(bad.text, 'Deployment "etl/nightly" is declared twice');
  assertStringIncludes(bad.text, "Invalid: 2 deployments in 2 files, 3 errors, 0 warnings.");
  assert(!bad.text.includes("config/app.yaml"), bad.text);
});
