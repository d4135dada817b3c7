/**
 * The shipping files agree with each other and with the CLI: fly.toml's release command names a
 * file the Dockerfile puts on PATH and only flags deploy accepts; the image is glibc-based and
 * runs as a non-root user; the binary's permissions live in one place; no dev-only dependency is
 * compiled in.
 */
import { parse as parseToml } from "smol-toml";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { REPO_ROOT } from "./helpers.ts";
import { parseCommandLine } from "../deploy.ts";
import { BINARY_PERMISSIONS, COMPILE_ARGS } from "../tools/compile.ts";
import { PINNED_PREFECT_VERSION } from "./prefect_server.ts";

const read = (path: string) => Deno.readTextFileSync(`${REPO_ROOT}${path}`);

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

/** Dockerfile stages with their instructions, continuation lines joined. */
function dockerStages(text: string): Stage[] {
  const stages: Stage[] = [];
  const args = new Map<string, string>();
  const joined = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  for (const line of joined) {
    const [instruction, ...rest] = line.split(/\s+/);
    const value = rest.join(" ").replace(/\$\{(\w+)\}/g, (_, name) => args.get(name) ?? "");
    if (instruction === "ARG" && stages.length === 0) {
      const [name, fallback] = value.split("=");
      args.set(name, fallback ?? "");
    } else if (instruction === "FROM") {
      const [from, , name] = value.split(/\s+/);
      stages.push({ from, name, lines: [] });
    } else stages.at(-1)?.lines.push(`${instruction} ${value}`);
  }
  return stages;
}

Deno.test("fly.toml's release command runs the image's binary with flags deploy accepts", () => {
  const fly = parseToml(read("fly.toml")) as {
    deploy: { release_command: string };
    processes: Record<string, string>;
    build: { dockerfile: string };
  };
  const [program, ...argv] = fly.deploy.release_command.split(/\s+/);
  assertEquals(program, "deploy");
  const options = parseCommandLine(argv);
  assertEquals(options.command, "apply");
  assertEquals(options.prune, false, "prune stays off by default");
  assert(options.wait > 0, "the release command waits for the API");
  // Fly has built the image already; image deployments keep the references CI applied.
  assertEquals(
    [options.buildImage, options.pushImage],
    [false, false],
    "the release builds nothing",
  );

  const [, app] = dockerStages(read(fly.build.dockerfile));
  const copies = app.lines.filter((l) => l.startsWith("COPY "));
  assert(
    copies.includes("COPY --from=build /src/dist/deploy /usr/local/bin/deploy"),
    "the binary is on PATH as deploy",
  );
  assert(copies.includes("COPY prefect/ prefect/"), "the manifests are in the image");
  assert(copies.includes("COPY flows/ flows/"), "the flows are in the image");
  assert(app.lines.includes("WORKDIR /app"), "release command and worker share /app");

  // The worker serves the pool the manifests name.
  assertMatch(fly.processes.worker, /--pool local-process\b/);
  assertMatch(read("prefect/refinement.yaml"), /name: local-process/);
});

Deno.test("the Dockerfile compiles in a Deno stage and ships a glibc, non-root image", () => {
  const [build, app] = dockerStages(read("Dockerfile"));
  const pinned = read("tools/deno").match(/DENO_VERSION="?([\d.]+)/)?.[1];
  assertEquals(build.from, `denoland/deno:debian-${pinned}`);
  assertEquals(build.name, "build");
  const run = build.lines.find((l) => l.startsWith("RUN "))!;
  assertMatch(run, /deno install --frozen/);
  assertMatch(run, /deno check deploy\.ts/);
  assertMatch(run, /deno task compile/);
  assertMatch(app.from, /^python:3\.\d+-slim-bookworm$/);
  const user = app.lines.filter((l) => l.startsWith("USER ")).at(-1);
  assert(user && !/USER (root|0)$/.test(user), `runs as ${user}`);
  assert(
    app.lines.some((l) => l.includes(`tests/prefect-pins/${PINNED_PREFECT_VERSION}.txt`)),
    "the image installs the Prefect the tests run against",
  );
});

Deno.test("the compile task uses the one list of binary permissions", () => {
  const tasks = JSON.parse(read("deno.json")).tasks as Record<string, string>;
  assertMatch(tasks.compile, /tools\/compile\.ts$/);
  // `deno task deploy` runs with the binary's permissions, so development behaves like release;
  // it passes the directory it was typed in, for relative PATHs.
  assertEquals(
    tasks.deploy,
    `DEPLOY_CALLER_DIR="$INIT_CWD" deno run --frozen ${BINARY_PERMISSIONS.join(" ")} deploy.ts`,
  );
  assertEquals(COMPILE_ARGS.slice(0, 2), ["compile", "--frozen"]);
  for (const flag of BINARY_PERMISSIONS) assert(COMPILE_ARGS.includes(flag), flag);
  // Narrow: every permission names what it grants, and only the image steps run programs.
  for (const flag of BINARY_PERMISSIONS) assertMatch(flag, /^--allow-(net|\w+=.+)$/, flag);
  assert(BINARY_PERMISSIONS.includes("--allow-run=docker,sh"), "runs docker and sh only");
  assert(BINARY_PERMISSIONS.includes("--allow-write=."), "writes only inside its directory");
  assertEquals(
    COMPILE_ARGS.slice(-3),
    ["dist/deploy", "deploy.ts"].length === 2 ? ["--output", "dist/deploy", "deploy.ts"] : [],
  );
});

Deno.test("no dev-only dependency is part of the compiled program", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--frozen", `${REPO_ROOT}deploy.ts`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { npmPackage?: string }[];
    npmPackages: Record<string, { dependencies?: string[] }>;
  };
  // Every npm package reachable from deploy.ts: its direct imports and their dependencies.
  const reachable = new Set<string>();
  const visit = (id: string) => {
    if (reachable.has(id)) return;
    reachable.add(id);
    (graph.npmPackages[id]?.dependencies ?? []).forEach(visit);
  };
  graph.modules.forEach((m) => m.npmPackage && visit(m.npmPackage));
  const npm = [...reachable].map((id) => id.replace(/(.)@.*$/, "$1"));
  for (const devOnly of ["json-schema-to-typescript", "smol-toml"]) {
    assert(!npm.includes(devOnly), `${devOnly} is in deploy.ts's graph`);
  }
  for (const needed of ["yaml", "ajv", "@lezer/python"]) {
    assert(npm.includes(needed), `${needed} missing from ${npm.join(", ")}`);
  }
});
