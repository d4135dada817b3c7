/**
 * `deno task bench:inspect`: reading 200 flow files — parse, flow name, parameter schema — as
 * validate, plan and apply do, without Python. Figures are medians of warm in-process runs,
 * plus one CLI `validate` of 200 deployments whose entrypoints are those files.
 */
import { findFlow, parsePythonModule } from "../lib/python_source.ts";
import { parameterSchema } from "../lib/parameter_schema.ts";

const FILES = 200;
const RUNS = 7;
const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;

function flowSource(i: number): string {
  return `"""Generated flow ${i}."""
from datetime import datetime
from enum import Enum
from typing import Literal, Optional

from prefect import flow, task
from pydantic import BaseModel


class Mode(str, Enum):
    FULL = "full"
    DELTA = "delta"


class Target(BaseModel):
    table: str
    batch_size: int = 100


@task
def step(x: int) -> int:
    return x * 2


@flow(name="generated-${i}")
def generated_${i}(
    target: Target,
    since: Optional[datetime] = None,
    mode: Mode = Mode.FULL,
    level: Literal["info", "debug"] = "info",
    tags: list[str] = [],
    limits: dict[str, int] = {},
    retries: int = 3,
):
    """Flow ${i}.

    Args:
        target: Where the rows go.
        since: Start of the window.
        mode: Full or incremental.
    """
    return step(retries)
`;
}

const dir = await Deno.makeTempDir({ prefix: "deploy-ts-inspect-bench-" });
await Deno.mkdir(`${dir}/flows`);
await Deno.mkdir(`${dir}/prefect`);
const paths: string[] = [];
for (let i = 0; i < FILES; i++) {
  paths.push(`${dir}/flows/flow_${i}.py`);
  await Deno.writeTextFile(paths[i], flowSource(i));
}
await Deno.writeTextFile(
  `${dir}/prefect/all.yaml`,
  `deployments:\n${
    Array.from({ length: FILES }, (_, i) =>
      `  - name: d\n    entrypoint: flows/flow_${i}.py:generated_${i}\n    work_pool: {name: p}\n    parameters: {target: {table: t}}\n`)
      .join("")
  }`,
);

const samples: number[] = [];
for (let run = 0; run <= RUNS; run++) {
  const start = performance.now();
  for (let i = 0; i < FILES; i++) {
    const module = parsePythonModule(await Deno.readTextFile(paths[i]));
    const found = findFlow(module, `generated_${i}`);
    if (found.kind !== "flow" || found.flowName !== `generated-${i}`) throw new Error(`flow ${i}`);
    const schema = parameterSchema(module, found.fn);
    if (!(schema.definitions as Record<string, unknown>).Target) throw new Error(`schema ${i}`);
  }
  if (run > 0) samples.push(performance.now() - start);
}
samples.sort((a, b) => a - b);
const inProcess = samples[Math.floor(samples.length / 2)];

const cli: number[] = [];
for (let run = 0; run <= 3; run++) {
  const start = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "--allow-read", "--allow-env=NO_COLOR", DEPLOY_TS, "validate"],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  if (run > 0) cli.push(performance.now() - start);
}
cli.sort((a, b) => a - b);
await Deno.remove(dir, { recursive: true });

console.log(`| measure | time |
|---|--:|
| read 200 flow files: parse, flow name, parameter schema (in-process, median of ${RUNS} warm runs) | ${
  inProcess.toFixed(0)
} ms |
| per file | ${(inProcess / FILES).toFixed(2)} ms |
| \`deploy validate\` of 200 deployments in 200 flow files, parameters checked (CLI, median of 3) | ${
  cli[1].toFixed(0)
} ms |`);
