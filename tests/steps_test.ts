/**
 * The native steps against their originals. Differential: `dockerfile: auto` writes the same
 * Dockerfile as the pip-installed prefect-docker for the same project, and the Python behaviours
 * the steps reproduce (shlex.split, string.Template, str.splitlines, image names and tags, the
 * Prefect base image) give Python's answers. Then run_shell_script as it runs real commands.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { tempProject } from "./helpers.ts";
import { ensurePrefectDocker } from "./prefect_docker.ts";
import { PREFECT_VERSION } from "./prefect_server.ts";
import {
  buildDockerImage,
  defaultImageTag,
  prefectImageName,
  pythonSplitLines,
  qualifiedImageName,
  runShellScript,
  safeSubstitute,
  shlexSplit,
  type StepContext,
  StepError,
} from "../lib/steps.ts";

const REFERENCE = new URL("./prefect_docker_reference.py", import.meta.url).pathname;

async function reference(args: string[], stdin?: unknown): Promise<unknown> {
  const { bin, env } = await ensurePrefectDocker();
  const child = new Deno.Command(`${bin}/python`, {
    args: [REFERENCE, ...args],
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(stdin)));
    await writer.close();
  }
  const output = await child.output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function context(overrides: Partial<StepContext> = {}): StepContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    output: (line) => lines.push(line),
    env: (name) => Deno.env.get(name),
    secrets: [],
    now: () => new Date(),
    ...overrides,
  };
}

Deno.test("dockerfile: auto writes prefect-docker's Dockerfile for the same project", async () => {
  const { bin } = await ensurePrefectDocker();
  const python = new TextDecoder().decode(
    (await new Deno.Command(`${bin}/python`, {
      args: ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
      stdout: "piped",
    }).output()).stdout,
  ).trim();
  const projects: Record<string, Record<string, string>> = {
    "flows-project": { "flows/etl.py": "print('etl')\n" },
    "with-requirements": { "requirements.txt": "httpx\n", "etl.py": "" },
    "Ünïcode and spaces": { "etl.py": "" },
    "has-a-dockerfile": { "Dockerfile": "FROM scratch\n" },
    "requirements-is-a-directory": { "requirements.txt/keep": "" },
  };
  // The same projects twice, under the same directory names: one for each implementation.
  await using theirs = await tempProject(
    Object.fromEntries(
      Object.entries(projects).flatMap(([dir, files]) =>
        Object.entries(files).map(([name, text]) => [`${dir}/${name}`, text])
      ),
    ),
  );
  await using ours = await tempProject(
    Object.fromEntries(
      Object.entries(projects).flatMap(([dir, files]) =>
        Object.entries(files).map(([name, text]) => [`${dir}/${name}`, text])
      ),
    ),
  );
  const expected = await reference([
    "dockerfile",
    ...Object.keys(projects).map((dir) => `${theirs.dir}/${dir}`),
  ]) as Record<string, { dockerfile: string | null; error: string | null }>;

  const cwd = Deno.cwd();
  const dockerHost = Deno.env.get("DOCKER_HOST");
  Deno.env.set("DOCKER_HOST", "unix:///nonexistent/docker.sock"); // the build itself fails
  try {
    for (const dir of Object.keys(projects)) {
      Deno.chdir(`${ours.dir}/${dir}`);
      const persisted = `${ours.dir}/${dir}/../persisted.Dockerfile`;
      const ctx = context({
        prefectVersion: PREFECT_VERSION,
        env: (name) => name === "DEPLOY_PYTHON_VERSION" ? python : undefined,
      });
      let error: string | null = null;
      try {
        await buildDockerImage({
          image_name: "reference",
          dockerfile: "auto",
          persist_dockerfile: true,
          dockerfile_output_path: persisted,
        }, ctx);
      } catch (e) {
        assert(e instanceof StepError, String(e));
        error = e.message;
      }
      const dockerfile = await Deno.readTextFile(persisted).catch(() => null);
      await Deno.remove(persisted).catch(() => {});
      const want = expected[`${theirs.dir}/${dir}`];
      assertEquals(dockerfile, want.dockerfile, `${dir}: the Dockerfile`);
      if (want.dockerfile === null) assertEquals(error, want.error, `${dir}: the error`);
      // The temporary Dockerfile is gone again, and one the project had is left alone.
      assertEquals(
        await Deno.stat("Dockerfile").then(() => true, () => false),
        dir === "has-a-dockerfile",
      );
    }
  } finally {
    Deno.chdir(cwd);
    if (dockerHost === undefined) Deno.env.delete("DOCKER_HOST");
    else Deno.env.set("DOCKER_HOST", dockerHost);
  }
  const first = expected[`${theirs.dir}/flows-project`].dockerfile!;
  assertStringIncludes(first, `FROM prefecthq/prefect:${PREFECT_VERSION}-python${python}\n`);
  assertStringIncludes(
    expected[`${theirs.dir}/with-requirements`].dockerfile!,
    "RUN uv pip install -r /opt/prefect/with-requirements/requirements.txt\n",
  );
});

Deno.test("the steps read commands, templates, names and tags as Python does", async () => {
  const cases = {
    shlex: [
      "git rev-parse --short HEAD",
      `echo "a b" 'c d' e\\ f`,
      `printf "%s\\n" "say \\"hi\\"" 'it''s'`,
      `echo "back\\slash \\$HOME" \\$HOME`,
      "  spaced\tout  ",
      `empty "" ''`,
      `unclosed "quote`,
      "trailing\\",
      `mixed"quo"ted'x'y`,
    ],
    substitute: [
      ["echo $USER ${HOME} $$ $missing ${also_missing} $1 $", { USER: "u", HOME: "/h" }],
      ["cost: $$5 and ${USER}name", { USER: "me" }],
    ],
    splitlines: ["a\nb\r\nc\rd", "one\n", "", "x\n\ny", "form\ffeed\vtab\x1cfs\u2028ls"],
    names: [
      ["flows", null],
      ["flows", "ghcr.io/acme"],
      ["acme/flows", "ignored"],
      ["localhost:5000/flows", "ignored"],
      ["ghcr.io/acme/team/flows", null],
      ["registry.example.com/flows", null],
    ],
    tags: ["2026-01-02T03:04:05.123+00:00", "2026-12-31T23:59:59+00:00"],
    images: [["3.8.8", "3.11"], ["2.19.7", "3.10"], ["3.0.0rc1", "3.12"]],
  };
  const python = await reference(["helpers"], cases) as Record<string, unknown[]>;
  const shlex = cases.shlex.map((c) => {
    try {
      return shlexSplit(c);
    } catch (e) {
      return { error: (e as Error).message };
    }
  });
  assertEquals(shlex, python.shlex);
  assertEquals(
    cases.substitute.map(([text, values]) =>
      safeSubstitute(text as string, (name) => (values as Record<string, string>)[name])
    ),
    python.substitute,
  );
  assertEquals(cases.splitlines.map(pythonSplitLines), python.splitlines);
  assertEquals(
    cases.names.map(([name, namespace]) =>
      qualifiedImageName(name!, {
        env: (n) =>
          n === "PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE" ? namespace ?? undefined : undefined,
      })
    ),
    python.names,
  );
  assertEquals(cases.tags.map((t) => defaultImageTag(new Date(t))), python.tags);
  assertEquals(cases.images.map(([p, v]) => prefectImageName(p, v)), python.images);
});

Deno.test("run_shell_script runs each line without a shell, in its directory, with its env", async () => {
  await using project = await tempProject({ "sub/marker.txt": "here\n" });
  const ctx = context();
  const result = await runShellScript({
    script:
      `printf '%s|' "one arg" two\nsh -c 'echo "$GREETING from $(pwd)" >&2'\n\ncat marker.txt`,
    directory: `${project.dir}/sub`,
    env: { GREETING: "hello" },
  }, ctx);
  assertEquals(result.stdout, "one arg|two|here");
  assertEquals(result.stderr, `hello from ${project.dir}/sub`);
  // Shown line by line, each command's last line when it ends.
  assertEquals(ctx.lines, ["one arg|two|", `hello from ${project.dir}/sub`, "here"]);

  // Without a shell, `|` and `$HOME` are words; with shell: true, the shell reads them.
  const plain = await runShellScript(
    { script: "echo a | tr a b $NOPE", stream_output: false },
    ctx,
  );
  assertEquals(plain.stdout, "a | tr a b $NOPE");
  const shell = await runShellScript({ script: "echo a | tr a b", shell: true }, context());
  assertEquals(shell.stdout, "b");
  const expanded = await runShellScript({
    script: "echo $DEPLOY_TEST_NAME ${GREETING} $$HOME",
    env: { GREETING: "hi" },
    expand_env_vars: true,
  }, context({ env: (name) => name === "DEPLOY_TEST_NAME" ? "deploy" : undefined }));
  assertEquals(expanded.stdout, "deploy hi $HOME");
  assertEquals(ctx.lines.length, 3, "stream_output: false prints nothing");
});

Deno.test("run_shell_script stops at the first failing line, with its last lines", async () => {
  const ctx = context();
  let failure: StepError | undefined;
  try {
    await runShellScript({
      script: "echo first\nsh -c 'echo oops >&2; exit 3'\necho never",
    }, ctx);
  } catch (e) {
    failure = e as StepError;
  }
  assert(failure instanceof StepError, "it fails");
  assertMatch(failure.message, /^`run_shell_script` failed with error code 3 running "sh -c/);
  assertEquals(failure.tail, ["oops"]);
  assertEquals(ctx.lines, ["first", "oops"]);

  for (
    const [inputs, message] of [
      [{ script: "echo 'unclosed" }, /cannot split "echo 'unclosed": No closing quotation/],
      [{ script: "no-such-program-here" }, /failed with error code 127/],
      [{ script: "true", directory: "/no/such/dir" }, /Directory "\/no\/such\/dir" does not exist/],
      [{ script: "true", shel: true }, /takes no argument "shel"/],
      [{}, /needs `script`/],
      [
        { script: "echo $HOME", expand_env_vars: true },
        /would read "\$HOME", which deploy may not read/,
      ],
    ] as const
  ) {
    let error: unknown;
    try {
      await runShellScript(
        inputs,
        context({
          env: (name) => {
            if (name === "HOME") throw new Deno.errors.NotCapable("no");
            return undefined;
          },
        }),
      );
    } catch (e) {
      error = e;
    }
    assert(error instanceof StepError, `${JSON.stringify(inputs)} fails`);
    assertMatch(error.message, message);
  }
});
