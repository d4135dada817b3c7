/** The command line as users meet it: spawned like `deno task validate`, stdout/stderr/exit. */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { REPO_ROOT, runCli, tempProject } from "./helpers.ts";
import { parseCommandLine } from "../deploy.ts";
import denoConfig from "../deno.json" with { type: "json" };
import schema from "../schema/deployments.schema.json" with { type: "json" };

const GOOD = `name: cli-test
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool}
    schedules:
      - {cron: "0 6 * * *", timezone: UTC, active: true}
`;
const FLOW = "from prefect import flow\n\n@flow\ndef etl():\n    pass\n";

function assertNoStackTrace(text: string) {
  assert(!/\n\s+at .+:\d+:\d+/.test(text), `stack trace in output:\n${text}`);
}

Deno.test("cli: --help and every command's --help print usage, options and examples", async () => {
  for (
    const args of [["--help"], ["-h"], ["validate", "--help"], ["schema", "-h"], [
      "help",
      "validate",
    ]]
  ) {
    const { code, stdout } = await runCli(args);
    assertEquals(code, 0, args.join(" "));
    for (const section of ["USAGE", "OPTIONS", "EXAMPLES"]) assertStringIncludes(stdout, section);
  }
});

Deno.test("cli: --version prints the version from deno.json", async () => {
  const { code, stdout } = await runCli(["--version"]);
  assertEquals(code, 0);
  assertEquals(stdout.trim(), `deploy ${denoConfig.version}`);
});

Deno.test("cli: usage errors name the command or flag, exit 1", async () => {
  const cases: [string[], RegExp, string][] = [
    [["valdate"], /Unknown command "valdate"\. Did you mean "validate"\?/, "deploy --help"],
    [
      ["validate", "--stirct"],
      /^error: validate: unknown option "--stirct"\. Did you mean "--strict"\?\n/,
      "deploy validate --help",
    ],
    [
      ["plan", "--detailed-exit-code"],
      /unknown option "--detailed-exit-code"\. Did you mean "--detailed-exitcode"\?/,
      "deploy plan --help",
    ],
    [
      ["validate", "--prune"],
      /unknown option "--prune"\. It is an option of plan and apply\./,
      "deploy validate --help",
    ],
    [["apply", "-x"], /^error: apply: unknown option "-x"\.\n/, "deploy apply --help"],
    [
      ["validate", "--format", "xml"],
      /--format must be text, json or github, not "xml"/,
      "deploy validate --help",
    ],
    [["schema", "extra"], /Unexpected argument 'extra'/, "deploy schema --help"],
  ];
  for (const [args, pattern, help] of cases) {
    const { code, stdout, stderr } = await runCli(args);
    assertEquals(code, 1, args.join(" "));
    assertMatch(stderr, pattern);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n").length, 2, "one error line and the --help pointer");
    assertStringIncludes(stderr, `\nRun "${help}" for usage.`);
  }
});

Deno.test("cli: this repository's own manifests pass validate --strict", async () => {
  const { code, stdout, stderr } = await runCli(["validate", "--strict"]);
  assertEquals(stderr, "");
  assertEquals(code, 0);
  assertMatch(stdout, /^Valid: \d+ deployments in \d+ files, 0 errors, 0 warnings\.\n$/);
});

Deno.test("cli: under deno task, relative PATHs are read from the directory they were typed in", async () => {
  // `deno task` runs in the project root; here it is typed in prefect/. Deno keeps an INIT_CWD
  // it inherits (from the `deno task test` running this), so only what Deno needs is passed on.
  const inherited = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]
    .flatMap((name) => Deno.env.get(name) === undefined ? [] : [[name, Deno.env.get(name)!]]);
  const task = async (args: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", ...args],
      cwd: `${REPO_ROOT}prefect`,
      clearEnv: true,
      env: { ...Object.fromEntries(inherited), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  };
  const one = await task(["deploy", "validate", "refinement.yaml"]);
  assertEquals(one.code, 0, one.stderr);
  assertEquals(one.stdout, "Valid: 1 deployment in 1 file, 0 errors, 0 warnings.\n");
  const missing = await task(["deploy", "validate", "nope.yaml"]);
  assertEquals(missing.code, 1);
  assertStringIncludes(
    missing.stderr,
    'Cannot read "prefect/nope.yaml": no such file or directory.',
  );
  const here = await task(["validate", "."]);
  assertEquals(here.code, 0, here.stderr);
  assertMatch(here.stdout, /^Valid: \d+ deployments in \d+ files/);
  const inspect = await task(["deploy", "inspect", "../flows/refinement.py:refine"]);
  assertEquals(inspect.code, 0, inspect.stderr);
  assertMatch(inspect.stdout, /^flow refinement {2}— {2}flows\/refinement\.py:\d+ def refine/);
  // The default PATH is the project's prefect/, wherever the task is typed.
  const byDefault = await task(["deploy", "validate"]);
  assertEquals(byDefault.code, 0, byDefault.stderr);
});

Deno.test("cli: PATHs typed elsewhere in the project resolve from there, absolute ones as they are", () => {
  const root = Deno.cwd();
  const parse = (argv: string[], dir?: string) => parseCommandLine(argv, dir).paths;
  assertEquals(parse(["validate", "a.yaml", "../other/"], `${root}/prefect`), [
    "prefect/a.yaml",
    "other",
  ]);
  assertEquals(parse(["plan", "--manifest-dir", "."], `${root}/prefect/sub`), ["prefect/sub"]);
  assertEquals(parse(["validate", "/abs/m.yaml"], `${root}/prefect`), ["/abs/m.yaml"]);
  assertEquals(parse(["validate"], `${root}/prefect`), ["prefect"]);
  assertEquals(parse(["validate", "a.yaml"]), ["a.yaml"]);
  assertEquals(parse(["inspect", "etl.py:etl"], `${root}/flows`), ["flows/etl.py:etl"]);
  assertEquals(parse(["inspect", "pkg.flows:etl"], `${root}/flows`), ["pkg.flows:etl"]);
});

Deno.test("cli: schema prints the published JSON Schema", async () => {
  const { code, stdout } = await runCli(["schema"]);
  assertEquals(code, 0);
  assertEquals(JSON.parse(stdout), schema);
});

Deno.test("cli: text diagnostics are file:line:col on stderr, the summary on stdout", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": GOOD.replace("cron:", "cronn:"),
    "flows/etl.py": FLOW,
  });
  const { code, stdout, stderr } = await runCli(["validate"], { cwd: project.dir });
  assertEquals(code, 1);
  assertEquals(
    stderr,
    'prefect/a.yaml:7:10: error: Unknown key "cronn" in a schedule. Did you mean "cron"? [unknown-key]\n',
  );
  // The deployment with the typo is still one the file declares.
  assertEquals(stdout, "Invalid: 1 deployment in 1 file, 1 error, 0 warnings.\n");
});

Deno.test("cli: --format json prints one document with the contract's fields", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": GOOD.replace("timezone: UTC, ", ""),
    "prefect/b.yaml": GOOD.replace("nightly", "hourly").replace("0 6", "61"),
    "flows/etl.py": FLOW,
  });
  const { code, stdout, stderr } = await runCli(["validate", "--format", "json"], {
    cwd: project.dir,
  });
  assertEquals(code, 1);
  assertEquals(stderr, "");
  const result = JSON.parse(stdout);
  assertEquals(Object.keys(result), ["valid", "files", "deployments", "diagnostics"]);
  assertEquals(result.valid, false);
  assertEquals(result.files, ["prefect/a.yaml", "prefect/b.yaml"]);
  assertEquals(
    result.deployments.map((d: { flow: string; name: string }) => `${d.flow}/${d.name}`),
    [
      "etl/nightly",
      "etl/hourly",
    ],
  );
  assertEquals(result.diagnostics, [
    {
      severity: "warning",
      file: "prefect/a.yaml",
      line: 7,
      column: 9,
      path: "deployments[0].schedules[0]",
      code: "implicit-timezone",
      message: "State the schedule's `timezone` (Prefect reads it as UTC when omitted).",
    },
    {
      severity: "error",
      file: "prefect/b.yaml",
      line: 7,
      column: 16,
      path: "deployments[0].schedules[0].cron",
      code: "invalid-cron",
      message:
        'Invalid cron "61 * * *": expected 5 fields (minute hour day-of-month month day-of-week), found 4.',
    },
  ]);
});

Deno.test("cli: --format github prints workflow annotations", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": GOOD.replace("name: pool", "nam: pool"),
  });
  const { code, stdout } = await runCli(["validate", "--no-code-checks", "--format", "github"], {
    cwd: project.dir,
  });
  assertEquals(code, 1);
  assertEquals(
    stdout.split("\n")[0],
    '::error file=prefect/a.yaml,line=5,col=17,title=unknown-key::Unknown key "nam" in `work_pool`. Did you mean "name"?',
  );
});

Deno.test("cli: warnings pass, --strict makes them fail", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": GOOD.replace("active: true", "timezone: UTC").replace("timezone: UTC, ", ""),
    "flows/etl.py": FLOW,
  });
  const lax = await runCli(["validate"], { cwd: project.dir });
  assertEquals(lax.code, 0);
  assertStringIncludes(lax.stderr, ": warning: State the schedule's `active: true`");
  const strict = await runCli(["validate", "--strict"], { cwd: project.dir });
  assertEquals(strict.code, 1);
  assertStringIncludes(strict.stderr, ": error: State the schedule's `active: true`");
});

Deno.test("cli: a {{ $VARIABLE }} the release binary may not read is an error before plan", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": `pull:
  - prefect.deployments.steps.set_working_directory: {directory: "{{ $HOME }}/app"}
build:
  - prefect.deployments.steps.run_shell_script: {script: "echo {{ $HOME }}"}
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool:
      name: pool
      job_variables: {env: {REGION: "{{ $DEPLOY_REGION }}", USER: "{{ $USER }}"}}
`,
    "flows/etl.py": FLOW,
  });
  // The permissions of `deno task validate`: NO_COLOR only, as narrow as the binary's.
  const { code, stderr } = await runCli(["validate"], { cwd: project.dir });
  assertEquals(code, 1);
  const errors = stderr.split("\n").filter((l) => l.includes("env-not-permitted"));
  assertEquals(errors, [
    'prefect/a.yaml:2:66: error: Environment variable "HOME" may not be read: the compiled deploy reads only PREFECT_*, DEPLOY_* and NO_COLOR. Rename it, e.g. DEPLOY_HOME. [env-not-permitted]',
    'prefect/a.yaml:10:67: error: Environment variable "USER" may not be read: the compiled deploy reads only PREFECT_*, DEPLOY_* and NO_COLOR. Rename it, e.g. DEPLOY_USER. [env-not-permitted]',
  ]);
});

Deno.test("cli: --flow and -n that match nothing suggest or list what the manifests declare", async () => {
  await using project = await tempProject({
    "prefect/a.yaml": GOOD +
      GOOD.replace("name: cli-test\ndeployments:\n", "").replace("nightly", "hourly"),
    "flows/etl.py": FLOW,
  });
  const cases: [string[], string][] = [
    [
      ["--flow", "etll"],
      'No deployment in the manifests matches --flow "etll". Did you mean --flow "etl"?',
    ],
    [["-n", "nightlly"], 'matches --name "nightlly". Did you mean --name "nightly"?'],
    [
      ["-n", "etl/daily"],
      'matches --name "etl/daily". Deployments in the manifests: "etl/nightly", "etl/hourly".',
    ],
    [["--flow", "report*"], 'matches --flow "report*". Flows in the manifests: "etl".'],
  ];
  for (const [args, message] of cases) {
    // Selection is checked before the server is asked anything, so no API is needed here.
    const { code, stderr } = await runCli(["plan", ...args], { cwd: project.dir });
    assertEquals(code, 1, args.join(" "));
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
    assertStringIncludes(stderr, message);
  }
});

Deno.test("cli: bad input gets one located line and exit 1, never a stack trace", async () => {
  const aliasBomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (
    const [prev, next] of [["a", "b"], ["b", "c"], ["c", "d"], ["d", "e"], ["e", "f"], ["f", "g"]]
  ) {
    aliasBomb.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(",")}]`);
  }
  const cases: [string, string | Uint8Array, RegExp][] = [
    [
      "binary.yaml",
      new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2]),
      /^binary\.yaml: error: File is binary, not YAML\. \[binary-file\]$/,
    ],
    [
      "big.yaml",
      "# " + "x".repeat(10 * 1024 * 1024),
      /^big\.yaml: error: File is 10\.0 MB; manifests larger than 1 MB are refused\. \[file-too-large\]$/,
    ],
    [
      "bomb.yaml",
      aliasBomb.join("\n") + "\n",
      /^bomb\.yaml:6:14: error: Aliases expand to too much data .* \[alias-limit\]$/,
    ],
    [
      "deep.yaml",
      "deployments: " + "[".repeat(100_000) + "]".repeat(100_000),
      /^deep\.yaml:1:78: error: Nesting deeper than 64 levels is refused\. \[nesting-too-deep\]$/,
    ],
    [
      "deep2.yaml",
      Array.from({ length: 300 }, (_, i) => " ".repeat(i) + "k:").join("\n"),
      /^deep2\.yaml:257:1: error: Nesting deeper than 64 levels is refused\. \[nesting-too-deep\]$/,
    ],
    [
      "latin1.yaml",
      new Uint8Array([...new TextEncoder().encode("deployments:\n  - name: caf"), 0xe9, 0x0a]),
      /^latin1\.yaml:2:14: error: File is not UTF-8: byte 0xe9 at offset 26; save it as UTF-8\. \[not-utf8\]$/,
    ],
    [
      "tabs.yaml",
      "deployments:\n\t- name: x\n",
      /^tabs\.yaml:2:1: error: Tab used for indentation; YAML indents with spaces\. \[tab-indent\]$/,
    ],
    [
      "conflict.yaml",
      "deployments:\n<<<<<<< HEAD\n  - name: a\n=======\n  - name: b\n>>>>>>> main\n",
      /^conflict\.yaml:2:1: error: Unresolved merge-conflict marker; resolve the conflict\. \[merge-conflict\]$/,
    ],
    [
      "multi.yaml",
      "deployments: []\n---\ndeployments: []\n",
      /^multi\.yaml:2:1: error: A manifest holds one YAML document; .* \[multi-document\]$/,
    ],
    [
      "syntax.yaml",
      "deployments:\n  - name: a\n   entrypoint: b\n",
      /^syntax\.yaml:3:1: error: .* \[yaml-syntax\]$/,
    ],
    [
      "empty.yaml",
      "# nothing here\n",
      /^empty\.yaml: error: File is empty; expected a `deployments:` list\. \[empty-file\]$/,
    ],
  ];
  for (const [name, content, pattern] of cases) {
    await using project = await tempProject({ [name]: content });
    const { code, stdout, stderr } = await runCli(["validate", name], { cwd: project.dir });
    assertEquals(code, 1, name);
    assertNoStackTrace(stderr);
    const lines = stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${name}: ${stderr}`);
    assertMatch(lines[0], pattern, name);
    assertMatch(stdout, /^Invalid: 0 deployments in 1 file, 1 error, 0 warnings\.\n$/);
  }
});

Deno.test("cli: a missing path and a directory without manifests each get one line", async () => {
  await using project = await tempProject({ "empty/README.md": "no manifests" });
  const missing = await runCli(["validate", "nope/"], { cwd: project.dir });
  assertEquals(missing.code, 1);
  assertEquals(
    missing.stderr,
    'nope/: error: Cannot read "nope/": no such file or directory. [path-not-found]\n',
  );
  const empty = await runCli(["validate", "--manifest-dir", "empty"], { cwd: project.dir });
  assertEquals(empty.code, 1);
  assertEquals(
    empty.stderr,
    'empty: error: No manifest files (*.yaml, *.yml) in "empty". [no-manifests]\n',
  );
});
