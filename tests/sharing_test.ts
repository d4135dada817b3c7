/**
 * One Prefect server shared by environments and projects, as teams run it: ownership marks per
 * project and environment, prune that reaches only its own, no silent takeover, adoption of
 * unowned deployments, saved plans that apply exactly what was reviewed, and the server-side lock
 * that serialises applies. One real server for the file; steps share its state in order.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { lockName } from "../lib/lock.ts";

const FLOWS = `from prefect import flow


@flow
def etl(limit: int = 1):
    return limit
`;

function deployment(name: string, cron = "0 3 * * *") {
  return `  - name: ${name}
    entrypoint: flows/etl.py:etl
    work_pool: {name: shared-pool}
    schedules:
      - {slug: main, cron: "${cron}", timezone: UTC, active: true}
`;
}

const manifest = (project: string, ...names: string[]) =>
  `name: ${project}\ndeployments:\n${names.map((n) => deployment(n)).join("")}`;

const API_KEY = "pnu_sharingKEY0123456789abcdef";
const HEADER_SECRET = "hdr-Secret-77";
const BLOCK_SECRET = "tok-Secret-9f8e7d";

interface SyncJson {
  deployments: {
    flow: string;
    name: string;
    id: string | null;
    action: string;
    changes: { field: string; before: unknown; after: unknown }[];
    previous_owner?: { project: string; environment: string | null };
    result?: string;
  }[];
  summary: Record<string, number>;
  undeclared: { flow: string; name: string; id: string }[];
  requests: { read: number; write: number };
  diagnostics: { code: string; file: string; line: number; column: number; message: string }[];
  error?: { kind: string; message: string };
}

function parse(result: CliResult): SyncJson {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

Deno.test("a shared server: environments and projects own what they wrote, and only that", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "shared-pool", type: "process" });
  const overlay = (prefix: string, tag: string) =>
    `defaults:\n  name_prefix: ${prefix}\n  tags: [${tag}]\n`;
  await using alpha = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/a.yaml": manifest("alpha", "one", "two"),
    "prefect/b.yaml": manifest("alpha", "three"),
    "prefect/environments/dev.yaml": overlay("dev-", "dev"),
    "prefect/environments/prod.yaml": overlay("prod-", "prod"),
  });
  await using beta = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/beta.yaml": manifest("beta", "one", "four"),
  });
  const env = { PREFECT_API_URL: server.apiUrl };
  const inAlpha = (args: string[], extra: Record<string, string> = {}) =>
    runDeploy(args, { cwd: alpha.dir, env: { ...env, ...extra } });
  const inBeta = (args: string[], extra: Record<string, string> = {}) =>
    runDeploy(args, { cwd: beta.dir, env: { ...env, ...extra } });
  const onServer = async () =>
    (await call<{ name: string; tags: string[] }[]>("POST", "/deployments/filter", {}))
      .map((d) => `${d.name} ${d.tags.filter((t) => /deploy\.ts/.test(t)).sort().join(",")}`)
      .sort();
  const byName = (name: string) =>
    call<{ id: string; tags: string[]; description: string | null }>(
      "GET",
      `/deployments/name/etl/${name}`,
    );

  await t.step("default, dev and prod of one project each carry their own mark", async () => {
    for (const args of [["apply"], ["apply", "--env", "dev"], ["apply", "--env", "prod"]]) {
      const result = await inAlpha(args);
      assertEquals(result.code, 0, result.stderr);
    }
    const marks = await onServer();
    assertEquals(marks, [
      "dev-one deploy.ts/env:dev,managed-by:deploy.ts/alpha",
      "dev-three deploy.ts/env:dev,managed-by:deploy.ts/alpha",
      "dev-two deploy.ts/env:dev,managed-by:deploy.ts/alpha",
      // The default environment's mark is today's project-only tag: nothing to migrate.
      "one managed-by:deploy.ts/alpha",
      "prod-one deploy.ts/env:prod,managed-by:deploy.ts/alpha",
      "prod-three deploy.ts/env:prod,managed-by:deploy.ts/alpha",
      "prod-two deploy.ts/env:prod,managed-by:deploy.ts/alpha",
      "three managed-by:deploy.ts/alpha",
      "two managed-by:deploy.ts/alpha",
    ]);
    for (const args of [["apply"], ["apply", "--env", "dev"], ["apply", "--env", "prod"]]) {
      const again = parse(await inAlpha([...args, "--format", "json"]));
      assertEquals(again.requests.write, 0, args.join(" "));
      assertEquals(again.undeclared, [], "no environment sees another's deployments as its own");
    }
  });

  await t.step(
    "each environment's prune reaches its own deployments only, in every order",
    async () => {
      // Nothing is undeclared anywhere: no environment plans to delete another's deployments.
      for (const envArgs of [[], ["--env", "dev"], ["--env", "prod"]]) {
        const plan = parse(await inAlpha(["plan", "--prune", "--format", "json", ...envArgs]));
        assertEquals(plan.summary.delete, 0, envArgs.join(" "));
      }
      await Deno.remove(`${alpha.dir}/prefect/b.yaml`);
      const orders = [["--env", "dev"], ["--env", "prod"], []];
      const expectedGone: string[] = [];
      for (const envArgs of orders) {
        const plan = parse(await inAlpha(["plan", "--prune", "--format", "json", ...envArgs]));
        const deletes = plan.deployments.filter((d) => d.action === "delete").map((d) => d.name);
        const prefix = envArgs[1] ? `${envArgs[1]}-` : "";
        assertEquals(deletes, [`${prefix}three`], envArgs.join(" "));
        const applied = await inAlpha(["apply", "--prune", "--yes", ...envArgs]);
        assertEquals(applied.code, 0, applied.stderr);
        expectedGone.push(`${prefix}three`);
        const names = (await onServer()).map((line) => line.split(" ")[0]);
        for (const gone of expectedGone) assert(!names.includes(gone), `${gone} deleted`);
        assertEquals(names.length, 9 - expectedGone.length, "nothing else was deleted");
      }
    },
  );

  await t.step("one manifest file as PATH cannot prune: it could not see the others", async () => {
    await Deno.writeTextFile(`${alpha.dir}/prefect/b.yaml`, manifest("alpha", "three"));
    await using proxy = startFaultProxy(server.apiUrl);
    const result = await inAlpha(["plan", "--prune", "prefect/a.yaml"], {
      PREFECT_API_URL: proxy.apiUrl,
    });
    assertEquals(result.code, 1);
    assertMatch(result.stderr, /error: --prune needs the manifest directory, not single files/);
    assertEquals(result.stderr.trim().split("\n").length, 1, result.stderr);
    assertEquals(proxy.requests.length, 0, "refused before reading the server");
    // Without --prune, one file as PATH plans just that file's deployments.
    const plan = parse(await inAlpha(["plan", "prefect/b.yaml", "--format", "json"]));
    assertEquals(plan.deployments.map((d) => `${d.action} ${d.name}`), ["create three"]);
    assertEquals(plan.undeclared, [], "one file is not the whole project: no undeclared list");
    assertEquals((await inAlpha(["apply", "prefect/b.yaml"])).code, 0);
  });

  await t.step(
    "another project's deployment is an error at the manifest, not a takeover",
    async () => {
      await using proxy = startFaultProxy(server.apiUrl);
      const result = parse(
        await inBeta(["apply", "--format", "json"], { PREFECT_API_URL: proxy.apiUrl }),
      );
      assertEquals(result.error?.kind, "preflight");
      const conflict = result.diagnostics.find((d) => d.code === "owned-elsewhere")!;
      assertEquals(
        `${conflict.file}:${conflict.line}:${conflict.column}`,
        "prefect/beta.yaml:3:11",
      );
      assertStringIncludes(
        conflict.message,
        'Deployment "etl/one" on the server belongs to project "alpha", environment "default"',
      );
      assertStringIncludes(conflict.message, "--adopt");
      assertEquals(
        proxy.syncWrites().length,
        0,
        "nothing written, not even beta's other deployment",
      );
      assertEquals((await byName("one")).tags, ["managed-by:deploy.ts/alpha"]);
    },
  );

  await t.step("--adopt takes it over visibly, and the old owner then refuses it", async () => {
    const plan = parse(await inBeta(["plan", "--adopt", "--format", "json"]));
    const adopt = plan.deployments.find((d) => d.name === "one")!;
    assertEquals(adopt.action, "adopt");
    assertEquals(adopt.previous_owner, { project: "alpha", environment: null });
    const tags = adopt.changes.find((c) => c.field === "tags")!;
    assertEquals(tags.before, ["managed-by:deploy.ts/alpha"]);
    assertEquals(tags.after, ["managed-by:deploy.ts/beta"]);
    assertEquals(plan.summary.adopt, 1);
    const text = await inBeta(["plan", "--adopt"]);
    assertMatch(text.stdout, /^> adopt\s+etl\/one$/m);
    assertMatch(
      text.stdout,
      /Plan: 1 to create, 0 to update, 1 to adopt, 0 to delete, 0 unchanged\./,
    );
    const applied = await inBeta(["apply", "--adopt"]);
    assertEquals(applied.code, 0, applied.stderr);
    assertMatch(applied.stdout, /etl\/one\s+\S+\s+adopted/);
    assertMatch(applied.stdout, /Apply: 1 created, 0 updated, 1 adopted, 0 deleted, 0 unchanged\./);
    assertEquals((await byName("one")).tags, ["managed-by:deploy.ts/beta"]);
    const back = await inAlpha(["plan"]);
    assertEquals(back.code, 1);
    assertStringIncludes(back.stderr, 'belongs to project "beta", environment "default"');
    // alpha's prune no longer reaches it either.
    await Deno.writeTextFile(`${alpha.dir}/prefect/a.yaml`, manifest("alpha", "two"));
    const prune = parse(await inAlpha(["plan", "--prune", "--format", "json"]));
    assertEquals(prune.deployments.filter((d) => d.action === "delete"), []);
  });

  await t.step("an unowned deployment is planned as its own action, adopt", async () => {
    const flow = await call<{ id: string }>("POST", "/flows/", { name: "etl" });
    await call("POST", "/deployments/", {
      name: "five",
      flow_id: flow.id,
      entrypoint: "flows/etl.py:etl",
      tags: ["made-by-the-ui"],
    });
    await Deno.writeTextFile(
      `${alpha.dir}/prefect/a.yaml`,
      manifest("alpha", "two") + deployment("five"),
    );
    const plan = parse(await inAlpha(["plan", "--format", "json"]));
    const five = plan.deployments.find((d) => d.name === "five")!;
    assertEquals(five.action, "adopt");
    assertEquals(five.previous_owner, undefined);
    assert(five.changes.some((c) => c.field === "tags"), "the mark is a visible change");
    assertEquals(plan.summary.adopt, 1);
    const applied = await inAlpha(["apply"]);
    assertEquals(applied.code, 0, applied.stderr);
    assertMatch(applied.stdout, /etl\/five\s+\S+\s+adopted/);
    assertEquals((await byName("five")).tags, ["managed-by:deploy.ts/alpha"]);
    const again = parse(await inAlpha(["apply", "--format", "json"]));
    assertEquals(again.requests.write, 0);
  });

  await t.step("plan and apply say what the project owns and no longer declares", async () => {
    await Deno.writeTextFile(`${alpha.dir}/prefect/a.yaml`, manifest("alpha", "two"));
    const plan = await inAlpha(["plan"]);
    assertEquals(plan.code, 0, plan.stderr);
    assertStringIncludes(
      plan.stderr.trim().split("\n").at(-1)!,
      '1 deployment of project "alpha", environment "default" is not in the manifests; ' +
        "--prune would delete it: etl/five.",
    );
    const json = parse(await inAlpha(["apply", "--format", "json"]));
    assertEquals(json.undeclared.map((d) => `${d.flow}/${d.name}`), ["etl/five"]);
    const dev = parse(await inAlpha(["plan", "--env", "dev", "--format", "json"]));
    assertEquals(dev.undeclared.map((d) => d.name).sort(), ["dev-one"], "dev's own only");
  });

  await t.step("a saved plan applies exactly what it shows", async () => {
    // A secret block fills the description: its value must reach neither the plan nor its file.
    const secretType = await call<{ id: string }>("GET", "/block_types/slug/secret");
    const [secretSchema] = await call<{ id: string }[]>("POST", "/block_schemas/filter", {
      block_schemas: { block_type_id: { any_: [secretType.id] } },
    });
    await call("POST", "/block_documents/", {
      name: "owner-token",
      block_type_id: secretType.id,
      block_schema_id: secretSchema.id,
      data: { value: BLOCK_SECRET },
    });
    await Deno.writeTextFile(
      `${alpha.dir}/prefect/a.yaml`,
      manifest("alpha", "two").replace('"0 3 * * *"', '"0 4 * * *"').replace(
        "    entrypoint: flows/etl.py:etl\n",
        '    entrypoint: flows/etl.py:etl\n    description: "Owner {{ prefect.blocks.secret.owner-token }}"\n',
      ),
    );
    const secrets = {
      PREFECT_API_KEY: API_KEY,
      PREFECT_CLIENT_CUSTOM_HEADERS: JSON.stringify({ "X-Proxy-Auth": HEADER_SECRET }),
    };
    await using proxy = startFaultProxy(server.apiUrl);
    const viaProxy = { PREFECT_API_URL: proxy.apiUrl };
    const made = await inAlpha(["plan", "--out", "alpha.plan", "--prune"], {
      ...secrets,
      ...viaProxy,
    });
    assertEquals(made.code, 0, made.stderr);
    assertStringIncludes(made.stderr, "Saved the plan to alpha.plan");
    const file = await Deno.readTextFile(`${alpha.dir}/alpha.plan`);
    for (const secret of [API_KEY, HEADER_SECRET, BLOCK_SECRET]) {
      assert(!file.includes(secret), "no secret in the plan file");
      assert(!made.stdout.includes(secret) && !made.stderr.includes(secret), "nor in the output");
    }
    const saved = JSON.parse(file);
    const described = saved.plan.deployments.find((d: { name: string }) => d.name === "two")
      .changes.find((c: { field: string }) => c.field === "description");
    assertEquals(described.after, "Owner ***");
    assertEquals(
      saved.plan.deployments.filter((d: { action: string }) => d.action !== "noop")
        .map((d: { action: string; name: string }) => `${d.action} ${d.name}`),
      ["update two", "delete five"],
    );
    const five = await byName("five");
    proxy.requests.length = 0;
    const applied = await inAlpha(["apply", "alpha.plan"], { ...secrets, ...viaProxy });
    assertEquals(applied.code, 0, applied.stderr);
    assertMatch(applied.stdout, /Apply: 0 created, 1 updated, 1 deleted, 1 unchanged\./);
    const two = await byName("two");
    const writes = proxy.syncWrites().filter((w) => w.status !== 503);
    // A write the server answered 503 (SQLite busy) was sent again: the one that landed counts.
    // The two deployments are written in parallel; each one's own writes keep their order.
    const of = (id: string) =>
      writes.filter((w) => w.path.includes(id)).map((w) =>
        `${w.method} ${w.path.replace(/[0-9a-f-]{36}/g, "<id>")}`
      );
    assertEquals(of(two.id), [
      "PATCH /deployments/<id>",
      "PATCH /deployments/<id>/schedules/<id>",
    ]);
    assertEquals(writes.find((w) => w.method === "PATCH")!.body, {
      description: `Owner ${BLOCK_SECRET}`,
    });
    // A pruned deployment's automations go first: the server leaves them behind.
    assertEquals(of(five.id), [
      "DELETE /automations/owned-by/prefect.deployment.<id>",
      "DELETE /deployments/<id>",
    ]);
    assertEquals(writes.length, 4);
    // Applying it a second time: the server has moved (by the plan itself).
    const twice = await inAlpha(["apply", "alpha.plan"], viaProxy);
    assertEquals(twice.code, 1);
    assertMatch(twice.stderr, /error: The saved plan "alpha\.plan" is out of date: /);
  });

  await t.step("a saved plan made stale by the server or a manifest writes nothing", async () => {
    await using proxy = startFaultProxy(server.apiUrl);
    const viaProxy = { PREFECT_API_URL: proxy.apiUrl };
    const made = await inAlpha(["plan", "--out", "stale.plan"], viaProxy);
    assertEquals(made.code, 0, made.stderr);
    const two = await byName("two");
    await call("PATCH", `/deployments/${two.id}`, { description: "edited in the UI" });
    proxy.requests.length = 0;
    const byServer = await inAlpha(["apply", "stale.plan", "--format", "json"], {
      PREFECT_API_URL: proxy.apiUrl,
    });
    assertEquals(byServer.code, 1);
    const json = parse(byServer);
    assertEquals(json.error?.kind, "stale-plan");
    assertStringIncludes(json.error!.message, "etl/two changed on the server");
    assertEquals(proxy.writes().length, 0, "nothing written, no lock taken");

    const again = await inAlpha(["plan", "--out", "stale.plan"], viaProxy);
    proxy.requests.length = 0;
    assertEquals(again.code, 0, again.stderr);
    await Deno.writeTextFile(
      `${alpha.dir}/prefect/a.yaml`,
      manifest("alpha", "two").replace('"0 3 * * *"', '"0 5 * * *"'),
    );
    const byManifest = await inAlpha(["apply", "stale.plan"], { PREFECT_API_URL: proxy.apiUrl });
    assertEquals(byManifest.code, 1);
    assertStringIncludes(byManifest.stderr, "is out of date: prefect/a.yaml changed");
    assertEquals(proxy.writes().length, 0);
    assertEquals((await byName("two")).description, "edited in the UI");

    const elsewhere = await inAlpha(["plan", "--out", "stale.plan"], viaProxy);
    assertEquals(elsewhere.code, 0, elsewhere.stderr);
    const otherUrl = await inAlpha(["apply", "stale.plan"]);
    assertEquals(otherUrl.code, 1);
    assertStringIncludes(
      otherUrl.stderr,
      `it was made against ${proxy.apiUrl}, not ${server.apiUrl}`,
    );

    const mixed = await inAlpha(["apply", "stale.plan", "--env", "dev"]);
    assertEquals(mixed.code, 1);
    assertStringIncludes(mixed.stderr, "a saved plan brings its own manifests");
    const notAPlan = await inAlpha(["apply", "--plan", "prefect/a.yaml"]);
    assertEquals(notAPlan.code, 1);
    assertStringIncludes(notAPlan.stderr, "is not a saved plan");
  });
});

Deno.test("the lock: one apply of a project and environment at a time", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "shared-pool", type: "process" });
  await using project = await tempProject({
    "flows/etl.py": FLOWS,
    "prefect/a.yaml": manifest("locked", "one", "two", "three"),
    "prefect/environments/dev.yaml": "defaults:\n  name_prefix: dev-\n",
  });
  const deploy = (args: string[], apiUrl = server.apiUrl, extra: Record<string, string> = {}) =>
    runDeploy(args, { cwd: project.dir, env: { PREFECT_API_URL: apiUrl, ...extra } });
  const variables = () => call<{ id: string; name: string }[]>("POST", "/variables/filter", {});
  const holdLock = async (environment: string | null, ttl = 60) =>
    await call<{ id: string }>("POST", "/variables/", {
      name: await lockName("locked", environment),
      value: JSON.stringify({
        holder: "a test",
        project: "locked",
        environment,
        started: new Date().toISOString(),
        ttl_seconds: ttl,
      }),
    });

  await t.step("two applies started together: one waits, then finds nothing to do", async () => {
    let release!: () => void;
    const slow = new Promise<void>((resolve) => release = resolve);
    await using first = startFaultProxy(server.apiUrl);
    await using second = startFaultProxy(server.apiUrl);
    for (const proxy of [first, second]) {
      proxy.rules.push({
        method: "POST",
        path: /^\/deployments\/$/,
        times: 1,
        respond: "forward",
        until: slow,
      });
    }
    const runs = [deploy(["apply"], first.apiUrl), deploy(["apply"], second.apiUrl)];
    // Whichever holds the lock is held up at its first create until the other is waiting.
    const someoneWaits = () =>
      [first, second].some((p) => p.lockRequests().some((r) => r.method === "GET"));
    const deadline = Date.now() + 60_000;
    while (!someoneWaits()) {
      assert(Date.now() < deadline, "one apply waits for the other's lock");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    release();
    const [a, b] = await Promise.all(runs);
    assertEquals([a.code, b.code], [0, 0], a.stderr + b.stderr);
    const waited = [a, b].filter((r) => /Waiting up to 300 s for the lock/.test(r.stderr));
    assertEquals(waited.length, 1, a.stderr + b.stderr);
    const waiter = waited[0];
    const waiterProxy = waiter === a ? first : second;
    assertMatch(waiter.stdout, /Apply: 0 created, 0 updated, 0 deleted, 3 unchanged\./);
    assertEquals(waiterProxy.syncWrites().length, 0, "the second apply wrote nothing");
    const names = (await call<{ name: string }[]>("POST", "/deployments/filter", {}))
      .map((d) => d.name).sort();
    assertEquals(names, ["one", "three", "two"], "no duplicate");
    assertEquals((await variables()).length, 0, "both released the lock");
  });

  await t.step("plan never takes the lock; another environment never waits", async () => {
    const held = await holdLock(null);
    await Deno.writeTextFile(
      `${project.dir}/prefect/a.yaml`,
      manifest("locked", "one", "two", "three").replaceAll('"0 3 * * *"', '"0 6 * * *"'),
    );
    const plan = await deploy(["plan"]);
    assertEquals(plan.code, 0, plan.stderr);
    assert(!/Waiting/.test(plan.stderr), plan.stderr);
    const dev = await deploy(["apply", "--env", "dev", "--lock-timeout", "0"]);
    assertEquals(dev.code, 0, dev.stderr);
    assertMatch(dev.stdout, /Apply: 3 created/);

    await using proxy = startFaultProxy(server.apiUrl);
    const timedOut = await deploy(["apply", "--lock-timeout", "2"], proxy.apiUrl);
    assertEquals(timedOut.code, 1);
    assertMatch(
      timedOut.stderr,
      /error: Another apply of project "locked", environment "default" still holds the lock after 2 s \(a test, since /,
    );
    assertEquals(proxy.syncWrites().length, 0);
    await call("DELETE", `/variables/${held.id}`);
  });

  await t.step("a killed holder's lock expires by itself", async () => {
    let release!: () => void;
    const never = new Promise<void>((resolve) => release = resolve);
    await using stuck = startFaultProxy(server.apiUrl);
    stuck.rules.push({
      method: "PATCH",
      path: /^\/deployments\/[^/]+\/schedules\//,
      times: 1,
      respond: "forward",
      until: never,
    });
    try {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--frozen",
          "--cached-only",
          "-A",
          new URL("../deploy.ts", import.meta.url).pathname,
          "apply",
        ],
        cwd: project.dir,
        env: {
          NO_COLOR: "1",
          PATH: Deno.env.get("PATH") ?? "",
          PREFECT_API_URL: stuck.apiUrl,
          DEPLOY_LOCK_TTL: "3",
        },
        clearEnv: true,
        stdout: "null",
        stderr: "null",
      }).spawn();
      const deadline = Date.now() + 60_000;
      while (!stuck.requests.some((r) => r.method === "PATCH" && r.path.includes("/schedules/"))) {
        assert(Date.now() < deadline, "the holder reached its first write");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assertEquals((await variables()).length, 1, "the holder has the lock");
      child.kill("SIGKILL");
      await child.status;
      const started = Date.now();
      const next = await deploy(["apply"]);
      assertEquals(next.code, 0, next.stderr);
      assertStringIncludes(next.stderr, 'Breaking the lock of project "locked"');
      assert(Date.now() - started < 30_000, "the stale lock was broken within its TTL and a poll");
      assertMatch(next.stdout, /Apply: 0 created, [1-3] updated, 0 deleted/);
      assertEquals((await variables()).length, 0);
      for (const name of ["one", "two", "three"]) {
        const d = await call<{ schedules: { schedule: { cron: string } }[] }>(
          "GET",
          `/deployments/name/etl/${name}`,
        );
        assertEquals(
          d.schedules.map((x) => x.schedule.cron),
          ["0 6 * * *"],
          `${name} converged:\n${next.stdout}${next.stderr}`,
        );
      }
    } finally {
      release(); // the killed apply's held PATCH now reaches the server: the same schedule
    }
  });
});
