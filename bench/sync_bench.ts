/**
 * `deno task bench:sync`: deploy.ts apply against `prefect deploy --all`, side by side, on the
 * same generated deployments and the same real Prefect server (started by the test harness),
 * on SQLite and on PostgreSQL, in one run.
 *
 * For each backend and N: a cold apply (everything created), a no-op apply (nothing changed),
 * and a one-change apply (one parameter of one deployment). Both tools talk to the server
 * through the same recording proxy, which counts their reads and writes the same way. Each tool
 * gets its own flow names, so both start cold. Then the floors under a no-op apply: the server's
 * own cost of listing the N deployments and `deploy --version` (start-up), beside a no-op apply
 * timed the same way (straight to the server, not through the recording proxy), the three back
 * to back in each of several rounds; and the floor under a cold apply: the server alone making the
 * same creates (the deployment bodies deploy.ts sent, replayed under other flow names). Prints
 * Markdown tables for BENCHMARKS.md. With `--triggers=K`, every deployment also has K event
 * triggers (automations); `--floors-only` leaves out `prefect deploy` and the first table;
 * `--pin` runs the servers on CPU 0 and every client on CPU 1.
 *
 * Usage: deno task bench:sync [--database sqlite|postgres|both] [--triggers=K] [--floors-only]
 *        [--pin] [N...]  (default both databases, no triggers, N = 10 100 500)
 */
import { parseArgs } from "node:util";
import { type Database, startPrefectServer } from "../tests/prefect_server.ts";
import { startFaultProxy } from "../tests/fault_proxy.ts";

const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;
const USAGE = "usage: deno task bench:sync [--database sqlite|postgres|both] [--triggers=K] " +
  "[--floors-only] [--pin] [N...]";
function usageError(problem: string): never {
  console.error(`${problem}\n${USAGE}`);
  Deno.exit(1);
}
let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: {
      database: { type: "string", default: "both" },
      triggers: { type: "string", default: "0" },
      "floors-only": { type: "boolean", default: false },
      pin: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
} catch (error) {
  usageError((error as Error).message.split(". ")[0] + ".");
}
const sizes = args.positionals.length ? args.positionals.map(Number) : [10, 100, 500];
const TRIGGERS = Number(args.values.triggers);
const databases: Database[] = args.values.database === "both"
  ? ["sqlite", "postgres"]
  : [args.values.database as Database];
const badSize = sizes.findIndex((n) => !Number.isInteger(n) || n < 1);
if (badSize >= 0) {
  usageError(`N must be a whole number of at least 1, not "${args.positionals[badSize]}".`);
}
if (!Number.isInteger(TRIGGERS) || TRIGGERS < 0) {
  usageError(`--triggers must be a whole number, not "${args.values.triggers}".`);
}
if (databases.some((d) => !/^(sqlite|postgres)$/.test(d))) {
  usageError(`--database must be sqlite, postgres or both, not "${args.values.database}".`);
}
const FLOORS_ONLY = args.values["floors-only"];
const PIN = args.values.pin;
if (PIN && navigator.hardwareConcurrency < 2) usageError("--pin needs at least two CPUs.");

/**
 * `--pin`: this process and what it starts from now on run on `cpu` alone (`taskset`). The
 * servers are started on CPU 0, the clients then run on CPU 1, as a release machine and a Prefect
 * server are two machines: neither's work slows the other's.
 */
async function pinTo(cpu: number) {
  const output = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", String(cpu), String(Deno.pid)],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error) => {
    if (error instanceof Deno.errors.NotFound) usageError("--pin needs taskset (util-linux).");
    throw error;
  });
  if (!output.success) throw new Error(`taskset: ${new TextDecoder().decode(output.stderr)}`);
}
const PER_FILE = 10;
/**
 * Rounds of the floors: a round's ratio ranges over ±20% with the server's answers, so enough
 * rounds that a few slow ones move no median — 21, as with 11 the median at N = 100 moved by a
 * tenth between runs of the same code.
 */
const ROUNDS = 21;
const RUN_DEPLOY_TS = [
  "run",
  "--frozen",
  "--cached-only",
  "--allow-read",
  "--allow-env",
  "--allow-net",
];

interface Measure {
  ms: number;
  reads: number;
  writes: number;
  ok: boolean;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

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

type Json = Record<string, unknown>;

/**
 * POSTs a flow and then its deployment for each recorded deployment body, under flow names with
 * `prefix`, one request at a time (so no SQLite 503 is in the figure); the milliseconds it took.
 */
async function replayCreates(apiUrl: string, bodies: Json[], prefix: string): Promise<number> {
  const post = async (path: string, body: unknown): Promise<{ id: string }> => {
    const response = await fetch(`${apiUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
    return await response.json();
  };
  const start = performance.now();
  for (const [i, body] of bodies.entries()) {
    const flow = await post("/flows/", { name: `${prefix}-flow-${i}` });
    await post("/deployments/", { ...body, flow_id: flow.id });
  }
  return performance.now() - start;
}

const rows: string[] = [];
const floors: string[] = [];
const coldFloors: string[] = [];
let version = "";
for (const database of databases) {
  if (PIN) await pinTo(0);
  await using server = await startPrefectServer({ database });
  if (PIN) await pinTo(1);
  version = server.version;
  await fetch(`${server.apiUrl}/work_pools/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "bench-pool", type: "process" }),
  }).then((r) => r.body?.cancel());
  await using proxy = startFaultProxy(server.apiUrl);
  const baseEnv = { ...server.clientEnv, PREFECT_API_URL: proxy.apiUrl, NO_COLOR: "1" };
  const backend = database === "postgres" ? "PostgreSQL" : "SQLite";

  for (const n of sizes) {
    const ours = await makeProject(`t${n}`, n);
    const theirs = await makeProject(`p${n}`, n);
    const deploy = (dir: string) =>
      timed(Deno.execPath(), [...RUN_DEPLOY_TS, DEPLOY_TS, "apply"], dir, baseEnv, proxy);
    const prefectDeploy = (dir: string) =>
      timed(`${server.bin}/prefect`, ["--no-prompt", "deploy", "--all"], dir, baseEnv, proxy);

    const results: Record<string, [Measure, Measure]> = {};
    let creates: Json[] = [];
    for (const phase of ["cold", "no-op", "one change"]) {
      const changed = phase === "one change";
      await Deno.writeTextFile(`${ours}/prefect/bench.yaml`, manifest(`t${n}`, n, changed));
      await Deno.writeTextFile(`${theirs}/prefect.yaml`, manifest(`p${n}`, n, changed));
      console.error(`${backend} N=${n} ${phase}: deploy.ts…`);
      const a = await deploy(ours);
      if (phase === "cold") {
        creates = proxy.requests
          .filter((r) =>
            r.method === "POST" && r.path === "/deployments/" && r.status >= 200 && r.status < 300
          )
          .map((r) => r.body as Json);
      }
      if (FLOORS_ONLY) {
        results[phase] = [a, a];
        continue;
      }
      console.error(`${backend} N=${n} ${phase}: prefect deploy --all…`);
      const b = await prefectDeploy(theirs);
      results[phase] = [a, b];
      console.error(
        `  deploy.ts ${a.ms.toFixed(0)} ms ${a.reads}r/${a.writes}w · prefect ${
          b.ms.toFixed(0)
        } ms ${b.reads}r/${b.writes}w`,
      );
    }
    // The floors under a no-op apply, and the no-op beside them timed the same way: straight to
    // the server (the proxy's copying is not the server's cost). The server's listing time
    // drifts by a fifth and more between minutes, so each round times the three back to back;
    // the ratio is the median of the rounds' ratios, the times the medians of theirs.
    const direct = { ...baseEnv, PREFECT_API_URL: server.apiUrl };
    const listOnce = async () => {
      const start = performance.now();
      for (let offset = 0; offset < n; offset += 200) {
        await fetch(`${server.apiUrl}/deployments/filter`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ flows: { name: { like_: `t${n}-flow-` } }, limit: 200, offset }),
        }).then((r) => r.arrayBuffer());
      }
      return performance.now() - start;
    };
    const run = async (args: string[]) => {
      const result = await timed(
        Deno.execPath(),
        [...RUN_DEPLOY_TS, DEPLOY_TS, ...args],
        ours,
        direct,
        proxy,
      );
      if (!result.ok) throw new Error(`deploy ${args.join(" ")} failed`);
      return result.ms;
    };
    const rounds: { listing: number; startup: number; noop: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      console.error(`${backend} N=${n} floors, round ${round + 1} of ${ROUNDS}…`);
      rounds.push({
        listing: await listOnce(),
        startup: await run(["--version"]),
        noop: await run(["apply"]),
      });
    }
    const median = (values: number[]) =>
      values.sort((x, y) => x - y)[Math.floor(values.length / 2)];
    const ratios = rounds.map((r) => r.noop / (r.listing + r.startup));
    const listing = median(rounds.map((r) => r.listing));
    const startup = median(rounds.map((r) => r.startup));
    const noop = median(rounds.map((r) => r.noop));
    const ratio = (x: number) => `${x.toFixed(2)}×`;
    floors.push(
      `| ${backend} | ${n} | ${seconds(listing)} | ${seconds(startup)} | ${seconds(noop)} | ${
        ratio(median(ratios))
      } (${ratio(Math.min(...ratios))}–${ratio(Math.max(...ratios))}) |`,
    );
    // The floor under a cold apply: the server's own cost of the same creates — each flow, then
    // its deployment with the very body deploy.ts sent — through the same proxy, one at a time.
    // Last: the copies carry this project's mark, which the no-op above would have listed.
    console.error(`${backend} N=${n} the server alone, the same creates…`);
    const serverCreates = await replayCreates(proxy.apiUrl, creates, `s${n}`);
    coldFloors.push(
      `| ${backend} | ${n} | ${seconds(results.cold[0].ms)} | ${seconds(serverCreates)} | ${
        (results.cold[0].ms / n).toFixed(0)
      } ms | ${(serverCreates / n).toFixed(0)} ms | ${
        (results.cold[0].ms / serverCreates).toFixed(2)
      }× |`,
    );

    for (const [phase, [a, b]] of Object.entries(results)) {
      const flag = (m: Measure) => m.ok ? "" : " (failed)";
      rows.push(
        `| ${backend} | ${n} | ${phase} | ${seconds(a.ms)}${flag(a)} | ${a.reads} / ${a.writes} | ${
          seconds(b.ms)
        }${flag(b)} | ${b.reads} / ${b.writes} | ${(b.ms / a.ms).toFixed(1)}× |`,
      );
    }
    await Deno.remove(ours, { recursive: true });
    await Deno.remove(theirs, { recursive: true });
  }
}

const comparison = `
| backend | N | apply | deploy.ts | reads / writes | prefect deploy --all | reads / writes | prefect ÷ deploy.ts |
|---|--:|---|--:|--:|--:|--:|--:|
${rows.join("\n")}
`;
console.log(
  `Prefect ${version}, ${new Date().toISOString().slice(0, 10)}${
    PIN ? ", servers on CPU 0 and clients on CPU 1 (--pin)" : ""
  }:
${FLOORS_ONLY ? "" : comparison}
The floor under a cold apply, same run: the server creating the same N flows and deployments (the
bodies deploy.ts sent, under other flow names) through the same proxy, one request at a time;
deploy.ts writes 8 at a time:

| backend | N | cold apply | the server alone | per deployment | server per create | cold ÷ server |
|---|--:|--:|--:|--:|--:|--:|
${coldFloors.join("\n")}

Floors under a no-op apply, same run, straight to the server, in ${ROUNDS} rounds of three back to
back: the server listing the N deployments with \`POST /deployments/filter\` and nothing else,
\`deploy --version\` (start-up), and the no-op apply. Times are medians of the rounds; the ratio is
the median of the rounds' ratios (their range in brackets):

| backend | N | listing | deploy --version | no-op apply | no-op ÷ (listing + start-up) |
|---|--:|--:|--:|--:|--:|
${floors.join("\n")}`,
);
