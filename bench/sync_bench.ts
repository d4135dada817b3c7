/**
 * `deno task bench:sync`: deploy.ts apply against `prefect deploy --all`, side by side, on the
 * same generated deployments and the same real Prefect server (started by the test harness).
 *
 * For each N: a cold apply (everything created), a no-op apply (nothing changed), and a
 * one-change apply (one parameter of one deployment). Both tools talk to the server through
 * the same recording proxy, which counts their reads and writes the same way. Each tool gets its
 * own flow names, so both start cold. Prints a Markdown table for BENCHMARKS.md.
 * With `--triggers=K`, every deployment also has K event triggers (automations).
 *
 * Usage: deno task bench:sync [--triggers=K] [N...]   (default 10 100 500, no triggers)
 */
import { startPrefectServer } from "../tests/prefect_server.ts";
import { startFaultProxy } from "../tests/fault_proxy.ts";

const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;
const triggerFlag = Deno.args.find((a) => a.startsWith("--triggers="));
const TRIGGERS = triggerFlag ? Number(triggerFlag.split("=")[1]) : 0;
const sizeArgs = Deno.args.filter((a) => a !== triggerFlag);
const sizes = sizeArgs.length ? sizeArgs.map(Number) : [10, 100, 500];
const PER_FILE = 10;

interface Measure {
  ms: number;
  reads: number;
  writes: number;
  ok: boolean;
}

function manifest(prefix: string, n: number, changed: boolean): string {
  const deployments = Array.from({ length: n }, (_, i) =>
    `  - name: d-${i}
    entrypoint: flows/f${Math.floor(i / PER_FILE)}.py:${prefix}_flow_${i}
    tags: [bench]
    parameters: {limit: ${changed && i === 0 ? 1000 : i}}
    work_pool: {name: bench-pool}
    schedules:
      - {slug: daily, cron: "${i % 60} 6 * * *", timezone: UTC, active: true}
${triggers(i)}`).join("");
  return `name: bench-${prefix}\ndeployments:\n${deployments}`;
}

function triggers(i: number): string {
  if (!TRIGGERS) return "";
  const each = Array.from(
    { length: TRIGGERS },
    (_, t) =>
      `      - match: {prefect.resource.id: "bench.source.${i}"}
        expect: [bench.event.${t}]
        parameters: {limit: "{{ event.payload.limit }}"}
`,
  );
  return `    triggers:
${each.join("")}`;
}

async function makeProject(prefix: string, n: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `deploy-ts-sync-bench-${prefix}-` });
  await Deno.mkdir(`${dir}/flows`);
  await Deno.mkdir(`${dir}/prefect`);
  for (let f = 0; f * PER_FILE < n; f++) {
    const flows = Array.from(
      { length: Math.min(PER_FILE, n - f * PER_FILE) },
      (_, j) =>
        `@flow\ndef ${prefix}_flow_${
          f * PER_FILE + j
        }(limit: int = 1, since: str | None = None):\n    return limit\n`,
    );
    await Deno.writeTextFile(
      `${dir}/flows/f${f}.py`,
      `from prefect import flow\n\n\n${flows.join("\n\n")}`,
    );
  }
  return dir;
}

async function timed(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  proxy: ReturnType<typeof startFaultProxy>,
): Promise<Measure> {
  proxy.requests.length = 0;
  const start = performance.now();
  const output = await new Deno.Command(command, {
    args,
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  if (!output.success) {
    console.error(new TextDecoder().decode(output.stderr).split("\n").slice(-15).join("\n"));
  }
  const writes = proxy.writes().length;
  return { ms, reads: proxy.requests.length - writes, writes, ok: output.success };
}

await using server = await startPrefectServer();
await fetch(`${server.apiUrl}/work_pools/`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ name: "bench-pool", type: "process" }),
}).then((r) => r.body?.cancel());
await using proxy = startFaultProxy(server.apiUrl);
const baseEnv = { ...server.clientEnv, PREFECT_API_URL: proxy.apiUrl, NO_COLOR: "1" };

const rows: string[] = [];
const floors: string[] = [];
for (const n of sizes) {
  const ours = await makeProject(`t${n}`, n);
  const theirs = await makeProject(`p${n}`, n);
  const deploy = (dir: string) =>
    timed(
      Deno.execPath(),
      [
        "run",
        "--frozen",
        "--cached-only",
        "--allow-read",
        "--allow-env",
        "--allow-net",
        DEPLOY_TS,
        "apply",
      ],
      dir,
      baseEnv,
      proxy,
    );
  const prefectDeploy = (dir: string) =>
    timed(`${server.bin}/prefect`, ["--no-prompt", "deploy", "--all"], dir, baseEnv, proxy);

  const results: Record<string, [Measure, Measure]> = {};
  for (const phase of ["cold", "no-op", "one change"]) {
    const changed = phase === "one change";
    await Deno.writeTextFile(`${ours}/prefect/bench.yaml`, manifest(`t${n}`, n, changed));
    await Deno.writeTextFile(`${theirs}/prefect.yaml`, manifest(`p${n}`, n, changed));
    console.error(`N=${n} ${phase}: deploy.ts…`);
    const a = await deploy(ours);
    console.error(`N=${n} ${phase}: prefect deploy --all…`);
    const b = await prefectDeploy(theirs);
    results[phase] = [a, b];
    console.error(
      `  deploy.ts ${a.ms.toFixed(0)} ms ${a.reads}r/${a.writes}w · prefect ${
        b.ms.toFixed(0)
      } ms ${b.reads}r/${b.writes}w`,
    );
  }
  // The server's own cost of listing the N deployments (what any no-op must read), measured
  // directly: the floor under a no-op apply.
  const floorStart = performance.now();
  for (let offset = 0; offset < n; offset += 200) {
    await fetch(`${server.apiUrl}/deployments/filter`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ flows: { name: { like_: `t${n}-flow-` } }, limit: 200, offset }),
    }).then((r) => r.arrayBuffer());
  }
  floors.push(`| ${n} | ${((performance.now() - floorStart) / 1000).toFixed(2)} s |`);
  for (const [phase, [a, b]] of Object.entries(results)) {
    const flag = (m: Measure) => m.ok ? "" : " (failed)";
    rows.push(
      `| ${n} | ${phase} | ${(a.ms / 1000).toFixed(2)} s${flag(a)} | ${a.reads} / ${a.writes} | ${
        (b.ms / 1000).toFixed(2)
      } s${flag(b)} | ${b.reads} / ${b.writes} | ${(b.ms / a.ms).toFixed(1)}× |`,
    );
  }
  await Deno.remove(ours, { recursive: true });
  await Deno.remove(theirs, { recursive: true });
}

console.log(
  `| N | apply | deploy.ts | reads / writes | prefect deploy --all | reads / writes | prefect ÷ deploy.ts |
|--:|---|--:|--:|--:|--:|--:|
${rows.join("\n")}

Server floor — listing the N deployments with \`POST /deployments/filter\`, nothing else:

| N | time |
|--:|--:|
${floors.join("\n")}`,
);
