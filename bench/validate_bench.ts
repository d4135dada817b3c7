/**
 * `deno task bench`: validation of 1,000 deployments across 100 manifests, offline, compared
 * with the floor (`deploy --version`: process start-up and module loading only).
 *
 * Every figure is the median of several warm runs of the real CLI, as users run it, plus the
 * in-process cost of `validate()` alone, and where a CLI run's time goes: each phase timed in a
 * fresh process, as cold as in the CLI. Prints a Markdown table for BENCHMARKS.md.
 */
import { defaultOptions, loadManifest, schemaProblems, validate } from "../deploy.ts";

const FILES = 100;
const PER_FILE = 10;
const RUNS = 7;
const deployTs = new URL("../deploy.ts", import.meta.url).pathname;

async function makeProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "deploy-ts-bench-" });
  await Deno.mkdir(`${dir}/prefect`);
  await Deno.mkdir(`${dir}/flows`);
  for (let f = 0; f < FILES; f++) {
    const flowName = `flow_${f}`;
    await Deno.writeTextFile(
      `${dir}/flows/${flowName}.py`,
      `from prefect import flow\n\n\n@flow\ndef ${flowName}(since=None, limit: int = 100):\n    return limit\n`,
    );
    const deployments = Array.from({ length: PER_FILE }, (_, d) =>
      `  - name: deployment-${d}
    entrypoint: flows/${flowName}.py:${flowName}
    description: Generated deployment ${d} of ${flowName}
    tags: [bench, "team-${d % 3}"]
    parameters: {limit: ${d + 1}}
    work_pool: {name: pool-${d % 4}, work_queue_name: default, job_variables: {env: {MODE: bench}}}
    concurrency_limit: {limit: 2, collision_strategy: ENQUEUE}
    schedules:
      - {slug: daily, cron: "${d} 6 * * *", timezone: Europe/Berlin, active: true}
      - {slug: interval, interval: PT${d + 5}M, timezone: UTC, active: false}
`).join("");
    await Deno.writeTextFile(
      `${dir}/prefect/${flowName}.yaml`,
      `# yaml-language-server: $schema=../schema/deployments.schema.json\nname: bench\ndeployments:\n${deployments}`,
    );
  }
  return dir;
}

async function timeCli(args: string[], cwd: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const start = performance.now();
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "--allow-read",
        "--allow-env=NO_COLOR",
        deployTs,
        ...args,
      ],
      cwd,
      stdout: "null",
      stderr: "null",
    }).output();
    const elapsed = performance.now() - start;
    if (code !== 0) throw new Error(`deploy ${args.join(" ")} exited ${code}`);
    if (i > 0) samples.push(elapsed); // the first run warms Deno's caches
  }
  return median(samples);
}

/**
 * Child mode (`--phases DIR`): in this fresh process, how long the modules took to load, then
 * either one cold `validate()` or reading every manifest and checking it against the schema.
 */
async function phases(dir: string, part: string) {
  const loaded = performance.now();
  Deno.chdir(dir);
  const started = performance.now();
  if (part === "validate") {
    await validate({ ...defaultOptions(), command: "validate", strict: true });
    console.log(JSON.stringify({ modules: loaded, validate: performance.now() - started }));
    return;
  }
  const files = [];
  for (const entry of Deno.readDirSync("prefect")) {
    files.push(await loadManifest(`prefect/${entry.name}`, () => {}));
  }
  const read = performance.now() - started;
  const schemaStart = performance.now();
  for (const file of files) schemaProblems(file.data);
  console.log(JSON.stringify({ read, schema: performance.now() - schemaStart }));
}

async function timePhases(dir: string): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {};
  for (let i = 0; i < RUNS; i++) {
    for (const part of ["validate", "read"]) {
      const { stdout } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--frozen",
          "--allow-read",
          "--allow-env",
          import.meta.filename!,
          "--phases",
          dir,
          part,
        ],
        stderr: "inherit",
      }).output();
      for (const [k, v] of Object.entries(JSON.parse(new TextDecoder().decode(stdout)))) {
        (samples[k] ??= []).push(v as number);
      }
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

if (Deno.args[0] === "--phases") {
  await phases(Deno.args[1], Deno.args[2]);
  Deno.exit(0);
}

const project = await makeProject();
try {
  const floor = await timeCli(["--version"], project);
  const cli = await timeCli(["validate", "--strict"], project);
  const inProcess: number[] = [];
  const cwd = Deno.cwd();
  Deno.chdir(project);
  for (let i = 0; i < RUNS + 1; i++) {
    const start = performance.now();
    const result = await validate({ ...defaultOptions(), command: "validate", strict: true });
    if (!result.valid || result.deployments.length !== FILES * PER_FILE) {
      throw new Error(`expected ${FILES * PER_FILE} valid deployments`);
    }
    if (i > 0) inProcess.push(performance.now() - start);
  }
  Deno.chdir(cwd);
  const ms = (n: number) => `${n.toFixed(0)} ms`;
  console.log(`| measure (median of ${RUNS} warm runs) | time |`);
  console.log("| --- | ---: |");
  console.log(`| \`deploy --version\` (floor: start-up) | ${ms(floor)} |`);
  console.log(
    `| \`deploy validate --strict\`, ${FILES * PER_FILE} deployments in ${FILES} files | ${
      ms(cli)
    } |`,
  );
  console.log(`| validation alone (in-process \`validate()\`) | ${ms(median(inProcess))} |`);
  console.log(
    `| validation cost over the floor | ${ms(cli - floor)} (${
      (cli / floor).toFixed(1)
    }× the floor) |`,
  );
  const cold = await timePhases(project);
  console.log(`
Where a CLI run's time goes (each part in a fresh process, median of ${RUNS}):

| part | time |
| --- | ---: |
| start-up and loading the modules | ${ms(cold.modules)} |
| \`validate()\`, cold | ${ms(cold.validate)} |
| of which: reading the 100 manifests (YAML) | ${ms(cold.read)} |
| of which: the JSON Schema (compiled ahead of time) | ${ms(cold.schema)} |
| of which: our checks (flow sources, parameters, schedules, templates) | ${
    ms(cold.validate - cold.read - cold.schema)
  } |`);
} finally {
  await Deno.remove(project, { recursive: true });
}
