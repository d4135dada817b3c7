/**
 * `deno task bench:alias`: YAML anchors, aliases and merge keys at scale, offline.
 *
 * - 2,000 deployments sharing `<<: *base` (ordinary YAML; the `yaml` package's own alias count
 *   refused it), against the same 2,000 deployments written out without aliases;
 * - 30,000 scalar aliases in one parameter list (alias resolution used to be quadratic: 75 s);
 * - a billion-laughs file (9 levels of 9 aliases), which must be refused, fast.
 *
 * Each figure is the median of several warm runs: the real CLI as users run it, and the
 * in-process `validate()`. Prints a Markdown table for BENCHMARKS.md.
 */
import { defaultOptions, validate } from "../deploy.ts";

const RUNS = 5;
const DEPLOYMENTS = 2000;
const SCALAR_ALIASES = 30_000;
const deployTs = new URL("../deploy.ts", import.meta.url).pathname;

const FLOW =
  `from prefect import flow\n\n\n@flow\ndef etl(limit: int = 1, items: list = []):\n    return limit\n`;

const BASE = `    entrypoint: flows/etl.py:etl
    description: A deployment generated for the alias benchmark
    tags: [bench, aliases]
    parameters: {limit: 10}
    work_pool: {name: pool, work_queue_name: default, job_variables: {env: {MODE: bench}}}
    concurrency_limit: {limit: 2, collision_strategy: ENQUEUE}
    schedules:
      - {slug: daily, cron: "0 6 * * *", timezone: Europe/Berlin, active: true}
      - {slug: often, interval: PT15M, timezone: UTC, active: false}
`;

function shared(): string {
  const items = Array.from({ length: DEPLOYMENTS }, (_, i) => `  - <<: *base\n    name: d-${i}\n`);
  return `name: bench\ndefinitions:\n  base: &base\n${BASE}deployments:\n${items.join("")}`;
}

function writtenOut(): string {
  const items = Array.from({ length: DEPLOYMENTS }, (_, i) => `  - name: d-${i}\n${BASE}`);
  return `name: bench\ndeployments:\n${items.join("")}`;
}

function scalarAliases(): string {
  return `name: bench\ndefinitions:\n  item: &item a-repeated-value\ndeployments:\n` +
    `  - name: many\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: pool}\n` +
    `    parameters:\n      items: [${Array(SCALAR_ALIASES).fill("*item").join(", ")}]\n`;
}

function billionLaughs(): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  const names = "abcdefghij";
  for (let i = 1; i < names.length; i++) {
    lines.push(`${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(",")}]`);
  }
  return `${lines.join("\n")}\ndeployments: []\n`;
}

const CASES: { name: string; file: string; text: string; valid: boolean; deployments: number }[] = [
  {
    name: `${DEPLOYMENTS} deployments sharing \`<<: *base\``,
    file: "shared.yaml",
    text: shared(),
    valid: true,
    deployments: DEPLOYMENTS,
  },
  {
    name: `the same ${DEPLOYMENTS} written out, no aliases`,
    file: "written.yaml",
    text: writtenOut(),
    valid: true,
    deployments: DEPLOYMENTS,
  },
  {
    name: `${SCALAR_ALIASES.toLocaleString("en")} scalar aliases in one list`,
    file: "scalars.yaml",
    text: scalarAliases(),
    valid: true,
    deployments: 1,
  },
  {
    name: "billion laughs (9 levels × 9 aliases), refused",
    file: "bomb.yaml",
    text: billionLaughs(),
    valid: false,
    deployments: 0,
  },
];

async function timeCli(args: string[], cwd: string, expectCode: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const start = performance.now();
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--frozen", "--allow-read", "--allow-env=NO_COLOR", deployTs, ...args],
      cwd,
      stdout: "null",
      stderr: "null",
    }).output();
    const elapsed = performance.now() - start;
    if (code !== expectCode) throw new Error(`deploy ${args.join(" ")} exited ${code}`);
    if (i > 0) samples.push(elapsed); // the first run warms Deno's caches
  }
  return median(samples);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const dir = await Deno.makeTempDir({ prefix: "deploy-ts-alias-bench-" });
const cwd = Deno.cwd();
try {
  await Deno.mkdir(`${dir}/flows`);
  await Deno.writeTextFile(`${dir}/flows/etl.py`, FLOW);
  for (const c of CASES) await Deno.writeTextFile(`${dir}/${c.file}`, c.text);
  const rows: string[] = [];
  for (const c of CASES) {
    const cli = await timeCli(["validate", c.file], dir, c.valid ? 0 : 1);
    Deno.chdir(dir);
    const inProcess: number[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const start = performance.now();
      const result = await validate({ ...defaultOptions(), command: "validate", paths: [c.file] });
      if (result.valid !== c.valid || result.deployments.length !== c.deployments) {
        throw new Error(
          `${c.name}: valid ${result.valid}, ${result.deployments.length} deployments`,
        );
      }
      if (i > 0) inProcess.push(performance.now() - start);
    }
    Deno.chdir(cwd);
    const kb = (c.text.length / 1024).toFixed(0);
    rows.push(
      `| ${c.name} | ${kb} kB | ${median(inProcess).toFixed(0)} ms | ${cli.toFixed(0)} ms |`,
    );
  }
  console.log(`| manifest (median of ${RUNS} warm runs) | size | \`validate()\` | CLI |`);
  console.log("| --- | ---: | ---: | ---: |");
  rows.forEach((row) => console.log(row));
} finally {
  Deno.chdir(cwd);
  await Deno.remove(dir, { recursive: true });
}
