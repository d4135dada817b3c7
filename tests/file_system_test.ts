/**
 * Every file-system failure in a path a user or a manifest names is one located diagnostic,
 * exit 1, with the JSON document intact: a path through a file (ENOTDIR), a name too long, a
 * symlink loop, a FIFO, a device, a directory where a file belongs, a broken symlink, a symlink
 * out of the project under the binary's permissions. Symlinks in the manifest directory are
 * followed or reported, never skipped.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { runCli, runDeploy, tempProject } from "./helpers.ts";
import { fileSystemReason, inspectPath, readProjectFileSync } from "../lib/project_files.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

const FLOW = "from prefect import flow\n\n\n@flow\ndef f():\n    pass\n";
const LONG = "n".repeat(300);

interface ValidateJson {
  valid: boolean;
  files: string[];
  deployments: { name: string }[];
  diagnostics: {
    severity: string;
    file: string;
    line: number | null;
    column: number | null;
    code: string;
    message: string;
  }[];
}

function parse(stdout: string): ValidateJson {
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`not one JSON document:\n${stdout}`);
  }
}

function deployment(name: string, entrypoint: string): string {
  return `  - name: ${name}\n    entrypoint: ${entrypoint}\n    work_pool: {name: p}\n`;
}

async function mkfifo(path: string) {
  const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert(success, `mkfifo ${path}`);
}

Deno.test("file system: entrypoints that fail on the file system are located errors", async () => {
  await using project = await tempProject({
    "deploy.ts": "// a file, not a directory\n",
    "flows/f.py": FLOW,
    "flows/pkg.py/__init__.py": "",
    "prefect/m.yaml": "deployments:\n" +
      deployment("through-a-file", "deploy.ts/x.py:f") +
      deployment("too-long", `flows/${LONG}.py:f`) +
      deployment("loop", "flows/loop.py:f") +
      deployment("fifo", "flows/fifo.py:f") +
      deployment("directory", "flows/pkg.py:f") +
      deployment("fine", "flows/f.py:f"),
  });
  await Deno.symlink("loop.py", `${project.dir}/flows/loop.py`);
  await mkfifo(`${project.dir}/flows/fifo.py`);
  const result = await runCli(["validate", "--format", "json"], { cwd: project.dir });
  assertEquals(result.code, 1, result.stderr);
  assert(!result.stderr.includes("internal error"), result.stderr);
  const json = parse(result.stdout);
  const errors = json.diagnostics.filter((d) => d.severity === "error")
    .map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`);
  assertEquals(errors, [
    '3:17 entrypoint-not-found Flow file "deploy.ts/x.py" does not exist (paths are relative to the directory deploy runs in).',
    `6:17 entrypoint-unreadable Cannot read "flows/${LONG}.py": the name is too long for the file system.`,
    '9:17 entrypoint-unreadable Cannot read "flows/loop.py": its symbolic links form a loop.',
    '12:17 entrypoint-unreadable Cannot read "flows/fifo.py": it is a named pipe (FIFO), not a file.',
    '15:17 entrypoint-unreadable Cannot read "flows/pkg.py": it is a directory, not a file.',
  ]);
  assertEquals(json.deployments.length, 6);
  // Without code checks nothing reads flow files, and nothing fails.
  const unchecked = await runCli(["validate", "--no-code-checks", "--format", "json"], {
    cwd: project.dir,
  });
  assertEquals(unchecked.code, 0, unchecked.stdout + unchecked.stderr);
  assertEquals(parse(unchecked.stdout).valid, true);
});

Deno.test("file system: PATH arguments that cannot be read are one line each, JSON intact", async () => {
  await using project = await tempProject({ "prefect/ok.yaml": "deployments: []\n" });
  await Deno.symlink("l2", `${project.dir}/l1`);
  await Deno.symlink("l1", `${project.dir}/l2`);
  await mkfifo(`${project.dir}/pipe.yaml`);
  const cases: [string, string, RegExp][] = [
    [`${LONG}.yaml`, "path-unreadable", /the name is too long for the file system/],
    ["l1", "path-unreadable", /its symbolic links form a loop/],
    ["pipe.yaml", "path-unreadable", /it is a named pipe \(FIFO\), not a file/],
    ["/dev/zero", "path-unreadable", /it is a device, not a file/],
    ["prefect/ok.yaml/x.yaml", "path-not-found", /a part of the path is a file, not a directory/],
  ];
  for (const [path, code, reason] of cases) {
    const started = performance.now();
    const text = await runCli(["validate", path], { cwd: project.dir });
    assertEquals(text.code, 1, path);
    const lines = text.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, text.stderr);
    assertMatch(lines[0], new RegExp(`: error: Cannot read ".*": .* \\[${code}\\]$`));
    assertMatch(lines[0], reason);
    const json = await runCli(["validate", "--format", "json", path], { cwd: project.dir });
    assertEquals(json.code, 1);
    const diagnostics = parse(json.stdout).diagnostics;
    assertEquals(diagnostics.map((d) => d.code), [code], path);
    assert(performance.now() - started < 20_000, `${path}: a FIFO or a device must not block`);
  }
});

Deno.test("file system: symlinks in the manifest directory are followed or reported", async () => {
  await using outside = await tempProject({ "elsewhere.yaml": "deployments: []\n" });
  await using project = await tempProject({
    "flows/f.py": FLOW,
    "shared/linked.yaml": "deployments:\n" + deployment("linked", "flows/f.py:f"),
    "prefect/own.yaml": "deployments:\n" + deployment("own", "flows/f.py:f"),
    "prefect/sub.yaml/ignored": "",
  });
  await Deno.symlink("../shared/linked.yaml", `${project.dir}/prefect/linked.yaml`);
  await Deno.symlink("../nowhere.yaml", `${project.dir}/prefect/broken.yaml`);
  await Deno.symlink(`${outside.dir}/elsewhere.yaml`, `${project.dir}/prefect/outside.yaml`);
  await Deno.symlink("/dev/zero", `${project.dir}/prefect/zero.yaml`);
  await mkfifo(`${project.dir}/prefect/pipe.yaml`);
  const asBinary = await runDeploy(["validate", "--format", "json"], {
    cwd: project.dir,
    permissions: BINARY_PERMISSIONS,
  });
  assertEquals(asBinary.code, 1, asBinary.stderr);
  const json = parse(asBinary.stdout);
  assertEquals(json.deployments.map((d) => d.name).sort(), ["linked", "own"]);
  const problems = json.diagnostics.filter((d) => d.severity === "error")
    .map((d) => `${d.file} ${d.code}: ${d.message.replace(/^Cannot read "[^"]+": /, "")}`);
  assertEquals(problems, [
    "prefect/broken.yaml path-unreadable: it is a symbolic link to nothing.",
    `prefect/outside.yaml path-unreadable: it leads to "${
      Deno.realPathSync(outside.dir)
    }/elsewhere.yaml"; deploy reads only inside the directory it runs in; run it from the project root.`,
    "prefect/pipe.yaml path-unreadable: it is a named pipe (FIFO), not a file.",
    "prefect/sub.yaml path-unreadable: it is a directory, not a manifest file.",
    'prefect/zero.yaml path-unreadable: it leads to "/dev/zero"; deploy reads only inside the directory it runs in; run it from the project root.',
  ]);
});

Deno.test("file system: under the binary's permissions no symlink reads outside the project", async () => {
  await using outside = await tempProject({ "secret.py": `${FLOW}# the secret file\n` });
  await using project = await tempProject({ "prefect/none.yaml": "deployments: []\n" });
  await Deno.symlink(outside.dir, `${project.dir}/out`);
  await Deno.symlink(`${outside.dir}/secret.py`, `${project.dir}/flow.py`);
  for (const entrypoint of ["out/secret.py:f", "flow.py:f"]) {
    const result = await runDeploy(["inspect", entrypoint], {
      cwd: project.dir,
      permissions: BINARY_PERMISSIONS,
    });
    assertEquals(result.code, 1, result.stdout);
    assertEquals(result.stdout, "");
    assertMatch(
      result.stderr.trim(),
      /^error: Cannot read "[^"]+": it leads to "[^"]+secret\.py"; deploy reads only inside the directory it runs in; run it from the project root\.$/,
    );
  }
  // With a wider permission the same link is read: the limit is the permission, not the link.
  const wide = await runDeploy(["inspect", "flow.py:f"], {
    cwd: project.dir,
    permissions: ["--allow-read"],
  });
  assertEquals(wide.code, 0, wide.stderr);
});

Deno.test("file system: each error in words; reads are bounded", async () => {
  assertEquals(fileSystemReason(new Deno.errors.PermissionDenied("EACCES")), "permission denied");
  assertEquals(inspectPath("/nonexistent/x").kind, "missing");
  await using project = await tempProject({ "big.txt": "x".repeat(2000) });
  assertEquals(readProjectFileSync(`${project.dir}/big.txt`, 1000), {
    kind: "too-large",
    size: 2000,
  });
  const read = readProjectFileSync(`${project.dir}/big.txt`, 5000);
  assertEquals(read.kind === "read" && read.bytes.length, 2000);
});
