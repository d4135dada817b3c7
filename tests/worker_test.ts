/**
 * End to end: this repository's own manifests, applied by deploy.ts to a real server, run by a
 * real Prefect process worker to Completed. Proves the deployment as registered (entrypoint,
 * pull steps, parameters, work pool) is one Prefect can run.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { api, REPO_ROOT, runDeploy } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";

Deno.test("a process worker runs a deployment applied by deploy.ts to Completed", async () => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "local-process", type: "process" });

  const applied = await runDeploy(["apply", "--flow", "refinement"], {
    cwd: REPO_ROOT,
    env: { PREFECT_API_URL: server.apiUrl },
  });
  assertEquals(applied.code, 0, applied.stderr);
  const [, id] = applied.stdout.match(/refinement\/hourly\s+(\S+)\s+created/) ?? [];
  assertMatch(id ?? "", /^[0-9a-f-]{36}$/);

  const run = await call<{ id: string }>("POST", `/deployments/${id}/create_flow_run`, {
    parameters: { batch_size: 7 },
  });
  const worker = await new Deno.Command(`${server.bin}/prefect`, {
    args: [
      "worker",
      "start",
      "--pool",
      "local-process",
      "--type",
      "process",
      "--run-once",
      "--limit",
      "1",
    ],
    cwd: server.home,
    env: { ...server.clientEnv, PREFECT_WORKER_QUERY_SECONDS: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const log = new TextDecoder().decode(worker.stdout) + new TextDecoder().decode(worker.stderr);

  const flowRun = await call<
    { state: { type: string; message: string | null }; parameters: Record<string, unknown> }
  >("GET", `/flow_runs/${run.id}`);
  assertEquals(flowRun.state.type, "COMPLETED", `${flowRun.state.message}\n${log}`);
  assertEquals(flowRun.parameters, { incremental: true, since: null, batch_size: 7 });
});
