/**
 * `plan` and `apply` with `--format json` print exactly one JSON document on stdout whatever
 * happens — success, invalid manifests, pre-flight errors, an unreachable server, a refused
 * request, a lock held too long, a partial failure — and `--format github` annotates every
 * failure. Against a real Prefect server.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { freePort, startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { lockName } from "../lib/lock.ts";

const FLOWS = "from prefect import flow\n\n\n@flow\ndef etl(limit: int = 1):\n    return limit\n";

const manifest = (names: string[], pool = "pool-o") =>
  `name: outcomes\ndeployments:\n${
    names.map((name) =>
      `  - name: ${name}\n    entrypoint: flows/etl.py:etl\n    work_pool: {name: ${pool}}\n`
    ).join("")
  }`;

interface Outcome {
  deployments: { name: string; action: string; result?: string; error?: string }[];
  summary: Record<string, number>;
  requests: { read: number; write: number };
  diagnostics: { severity: string; file: string; line: number | null; code: string }[];
  error?: { kind: string; message: string };
}

/** The whole of stdout is one JSON document. */
function document(result: CliResult): Outcome {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${result.code}):\n${result.stdout}`);
  }
}

Deno.test("plan and apply print one JSON document on every outcome", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-o", type: "process" });
  await using project = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/etl.yaml": manifest(["a", "b"]),
  });
  const write = (text: string) => Deno.writeTextFile(`${project.dir}/prefect/etl.yaml`, text);
  const deploy = (args: string[], apiUrl = server.apiUrl) =>
    runDeploy(args, { cwd: project.dir, env: { PREFECT_API_URL: apiUrl } });

  for (const command of ["plan", "apply"]) {
    await t.step(`${command}: invalid manifests`, async () => {
      await write(manifest(["a"]).replace("work_pool:", "work_pol:"));
      // A server that answers 503 to everything: its retries must not show.
      await using proxy = startFaultProxy(server.apiUrl);
      proxy.rules.push({ times: 1000, respond: 503 });
      const result = await deploy([command, "--format", "json"], proxy.apiUrl);
      assertEquals(result.code, 1);
      const doc = document(result);
      assertEquals(doc.error?.kind, "validation");
      assertMatch(doc.error!.message, /^Invalid: 1 deployment in 1 file, 1 error/);
      const [unknown] = doc.diagnostics.filter((d) => d.code === "unknown-key");
      assertEquals([unknown.file, unknown.line], ["prefect/etl.yaml", 5]);
      assertEquals(doc.deployments, []);
      // The project's name and flow names were known once the manifest parsed: the version
      // check, the flows, the marked automations and the listing of what the project owns began
      // alongside the checks, and ended when they failed.
      assertEquals(doc.requests, { read: 4, write: 0 });
      assertEquals(proxy.writes(), []);
      for (const request of proxy.requests) {
        assertMatch(
          `${request.method} ${request.path}`,
          /^(GET \/admin\/version|POST \/(flows|automations|deployments)\/filter)$/,
        );
      }
      assert(!/retrying|503/.test(result.stderr), result.stderr);
      assertEquals(result.stderr.trim().split("\n").at(-1), `error: ${doc.error!.message}`);
    });

    await t.step(`${command}: a manifest that does not parse reads nothing`, async () => {
      await write(manifest(["a"]) + "  - name: [unclosed\n");
      await using proxy = startFaultProxy(server.apiUrl);
      const result = await deploy([command, "--format", "json"], proxy.apiUrl);
      assertEquals(result.code, 1);
      const doc = document(result);
      assertEquals(doc.error?.kind, "validation");
      assertEquals(doc.requests, { read: 0, write: 0 });
      assertEquals(proxy.requests.length, 0, "the project's name is not known: no request");
    });

    await t.step(`${command}: a pre-flight error`, async () => {
      await write(manifest(["a"], "no-such-pool"));
      const result = await deploy([command, "--format", "json"]);
      assertEquals(result.code, 1);
      const doc = document(result);
      assertEquals(doc.error?.kind, "preflight");
      assertEquals(doc.diagnostics.map((d) => `${d.code} ${d.line}`), ["missing-work-pool 5"]);
      assertEquals(doc.requests.write, 0);
    });

    await t.step(`${command}: an unreachable server`, async () => {
      await write(manifest(["a", "b"]));
      const result = await deploy(
        [command, "--format", "json"],
        `http://127.0.0.1:${freePort()}/api`,
      );
      assertEquals(result.code, 1);
      const doc = document(result);
      assertEquals(doc.error?.kind, "server");
      assertStringIncludes(doc.error!.message, "Cannot reach the Prefect API");
      assertStringIncludes(result.stderr, "error: Cannot reach the Prefect API");
    });
  }

  await t.step("plan: success, and the same document shape", async () => {
    const doc = document(await deploy(["plan", "--format", "json"]));
    assertEquals(doc.error, undefined);
    assertEquals(doc.deployments.map((d) => d.action), ["create", "create"]);
    assertEquals(doc.summary.create, 2);
  });

  await t.step("apply: a partial failure reports each deployment and exits 1", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({
      method: "POST",
      path: /^\/deployments\/$/,
      body: /"name":"b"/,
      times: 100,
      respond: 500,
    });
    const result = await deploy(["apply", "--format", "json"], proxy.apiUrl);
    assertEquals(result.code, 1);
    const doc = document(result);
    assertEquals(
      doc.deployments.map((d) => `${d.name} ${d.result}`).sort(),
      ["a created", "b failed"],
    );
    assertEquals(doc.summary.failed, 1);
    assertStringIncludes(doc.deployments.find((d) => d.name === "b")!.error!, "500");
  });

  await t.step("apply: a request refused (prune without --yes, no terminal)", async () => {
    await write(manifest(["b"]));
    const result = await deploy(["apply", "--prune", "--format", "json"]);
    assertEquals(result.code, 1);
    const doc = document(result);
    assertEquals(doc.error?.kind, "user");
    assertStringIncludes(doc.error!.message, "pass --yes to confirm");
    assertEquals(doc.deployments.map((d) => `${d.action} ${d.name}`).sort(), [
      "create b",
      "delete a",
    ]);
  });

  await t.step("apply: a lock held too long", async () => {
    const held = await call<{ id: string }>("POST", "/variables/", {
      name: await lockName("outcomes", null),
      value: JSON.stringify({ holder: "a test", ttl_seconds: 600 }),
    });
    const result = await deploy(["apply", "--format", "json", "--lock-timeout", "1"]);
    await call("DELETE", `/variables/${held.id}`);
    assertEquals(result.code, 1);
    const doc = document(result);
    assertEquals(doc.error?.kind, "lock");
    assertStringIncludes(doc.error!.message, "still holds the lock after 1 s");
    assertEquals(doc.requests.write, 0);
  });

  await t.step("--format github annotates every failure, located where it can be", async () => {
    await write(manifest(["a"]).replace("work_pool:", "work_pol:"));
    const invalid = await deploy(["plan", "--format", "github"]);
    assertEquals(invalid.code, 1);
    assertMatch(
      invalid.stdout,
      /^::error file=prefect\/etl\.yaml,line=5,col=5,title=unknown-key::/m,
    );
    assertMatch(invalid.stdout, /^::error title=validation::Invalid: /m);
    await write(manifest(["a", "b"]));
    const unreachable = await deploy(
      ["apply", "--format", "github"],
      `http://127.0.0.1:${freePort()}/api`,
    );
    assertEquals(unreachable.code, 1);
    assertMatch(unreachable.stdout, /^::error title=server::Cannot reach the Prefect API/m);
    await using proxy = startFaultProxy(server.apiUrl);
    proxy.rules.push({ method: "POST", path: /^\/deployments\/$/, times: 100, respond: 500 });
    const failed = await deploy(["apply", "--format", "github"], proxy.apiUrl);
    assertEquals(failed.code, 1);
    assertMatch(failed.stdout, /^::error title=apply failed::etl\/b: /m);
    assert(!failed.stdout.includes("::error title=apply failed::etl/a"), "a was already there");
  });
});
