/**
 * The secrets matrix, against a real Prefect server behind the fault proxy: each kind of
 * credential (an API key, a basic-auth string, custom header values, a secret block's value)
 * × what a hostile or broken server does with it (401, 403, 422 and 500 bodies that echo the
 * request's headers and body at any offset, a version answer that echoes them, redirects to
 * another origin and to a path holding a secret) × plan and apply × text, json and github
 * output. Every byte printed is searched for every form of every secret (tests/leaks.ts): plain,
 * base64, JSON-escaped once and twice, URL- and HTML-encoded, any 10 characters of any of them.
 */
import { assert, assertEquals } from "./assert.ts";
import { api, type CliResult, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { type FaultRule, startFaultProxy } from "./fault_proxy.ts";
import { findLeaks, type Secret } from "./leaks.ts";

const API_KEY = "pnu_K3yS3cr3tVa1ue0123456789zz";
const AUTH_STRING = "admin:Aut/h S3cret+pass&é";
const HEADER_TOKEN = 'tok"en\\Secret88-QmX';
const HEADER_TEAM = "cu5tom-head&er<9>";
const BLOCK_VALUE = 'blk"Val\\ue-7Q9zX%20';

const FLOW = `from prefect import flow


@flow
def job(token: str = "", n: int = 1):
    return n
`;

function manifest(description: string): string {
  return `name: secrets
deployments:
  - name: existing
    entrypoint: flows/job.py:job
    description: "${description}"
    parameters: {token: "{{ prefect.blocks.secret.owner-token }}"}
    work_pool: {name: pool-s}
  - name: fresh
    entrypoint: flows/job.py:job
    parameters: {token: "{{ prefect.blocks.secret.owner-token }}"}
    work_pool: {name: pool-s}
`;
}

interface Config {
  name: string;
  env: Record<string, string>;
  secrets: Secret[];
}

const CREDENTIALS: Config[] = [
  {
    name: "API key",
    env: { PREFECT_API_KEY: API_KEY },
    secrets: [{ kind: "API key", value: API_KEY }],
  },
  {
    name: "auth string",
    env: { PREFECT_API_AUTH_STRING: AUTH_STRING },
    secrets: [{ kind: "auth string", value: AUTH_STRING, basicAuth: true }],
  },
];

const CONFIGS: Config[] = CREDENTIALS.map((c) => ({
  ...c,
  env: {
    ...c.env,
    PREFECT_CLIENT_CUSTOM_HEADERS: JSON.stringify({
      "X-Token": HEADER_TOKEN,
      "X-Team": HEADER_TEAM,
    }),
  },
  secrets: [
    ...c.secrets,
    { kind: "custom header", value: HEADER_TOKEN },
    { kind: "custom header", value: HEADER_TEAM },
    { kind: "secret block value", value: BLOCK_VALUE },
  ],
}));

/**
 * A request as a misbehaving server might echo it, `offset` characters into the body: the
 * credentials first (so a cut falls inside them), then every header, then the body.
 */
const echo = (offset: number) => ({ headers, text }: { headers: Headers; text: string }) =>
  JSON.stringify({
    detail: `${"x".repeat(offset)}${headers.get("authorization")} ${headers.get("x-token")} ${
      headers.get("x-team")
    } ${JSON.stringify(Object.fromEntries(headers))} ${text}`,
  });

const WRITES = /^\/deployments\/([0-9a-f-]{36})?$/;
const READS = /^\/deployments\/filter$/;

interface Behaviour {
  name: string;
  /** The rules for a command; `offset` moves echoed secrets across every cut. */
  rules(command: string, offset: number, elsewhere: string): FaultRule[];
  /** Exit code expected for plan and for apply. */
  code: { plan: number; apply: number };
  /** Whether the run must show a redacted secret (proof the echo reached output). */
  redacts?: (offset: number) => boolean;
}

const BEHAVIOURS: Behaviour[] = [
  { name: "no fault (plan diffs)", rules: () => [], code: { plan: 0, apply: 0 } },
  {
    name: "401",
    rules: () => [{ times: 1000, respond: 401, responseBody: echo(0) }],
    code: { plan: 1, apply: 1 },
  },
  {
    name: "403 echoing",
    rules: (_, offset) => [{ path: READS, times: 1000, respond: 403, responseBody: echo(offset) }],
    code: { plan: 1, apply: 1 },
    redacts: (offset) => offset < 150,
  },
  {
    name: "422 echoing",
    rules: (command, offset) => [{
      method: command === "plan" ? "POST" : undefined,
      path: command === "plan" ? READS : WRITES,
      body: command === "plan" ? undefined : /./,
      times: 1000,
      respond: 422,
      responseBody: echo(offset),
    }],
    code: { plan: 1, apply: 1 },
    redacts: (offset) => offset < 150,
  },
  {
    name: "500 echoing",
    rules: (command, offset) => [{
      path: command === "plan" ? READS : WRITES,
      body: command === "plan" ? undefined : /./,
      times: 1000,
      respond: 500,
      responseBody: echo(offset),
    }],
    code: { plan: 1, apply: 1 },
    redacts: (offset) => offset < 150,
  },
  {
    name: "version answer echoing",
    rules: (_, offset) => [{
      method: "GET",
      path: /^\/admin\/version$/,
      times: 1000,
      respond: 200,
      responseBody: echo(Math.min(offset, 40)),
    }],
    code: { plan: 1, apply: 1 },
  },
  {
    name: "redirect to another origin",
    rules: (command, _, elsewhere) => [{
      path: command === "plan" ? /^\/admin\/version$/ : WRITES,
      times: 1000,
      respond: 307,
      headers: { location: `${elsewhere}/api/steal?key=${encodeURIComponent(HEADER_TOKEN)}` },
    }],
    code: { plan: 1, apply: 1 },
  },
  {
    name: "redirect to a secret path",
    rules: (command) => [{
      path: command === "plan" ? READS : WRITES,
      times: 1000,
      respond: command === "plan" ? 302 : 307,
      headers: {
        location: `/api/moved/${encodeURIComponent(HEADER_TOKEN)}/${
          encodeURIComponent(BLOCK_VALUE)
        }`,
      },
    }],
    code: { plan: 1, apply: 1 },
  },
];

/** Offsets of the echoed request in an error body: across the 60, 120 and 300 character cuts. */
const OFFSETS = [0, 20, 45, 100, 110, 118, 200, 260, 280, 290, 296, 299];

Deno.test("secrets matrix: no credential reaches any output, whatever the server does", async () => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool-s", type: "process" });
  const secretType = await call<{ id: string }>("GET", "/block_types/slug/secret");
  const [secretSchema] = await call<{ id: string }[]>("POST", "/block_schemas/filter", {
    block_schemas: { block_type_id: { any_: [secretType.id] } },
  });
  await call("POST", "/block_documents/", {
    name: "owner-token",
    block_type_id: secretType.id,
    block_schema_id: secretSchema.id,
    data: { value: BLOCK_VALUE },
  });
  await using project = await tempProject({
    "flows/job.py": FLOW,
    "prefect/jobs.yaml": manifest("first owner"),
  });
  const created = await runDeploy(["apply", "-n", "existing"], {
    cwd: project.dir,
    env: { PREFECT_API_URL: server.apiUrl },
  });
  assertEquals(created.code, 0, created.stderr);
  // From here on every run plans an update of `existing` (its description names the block's
  // value) and a create of `fresh`: both write bodies carry the secret.
  await Deno.writeTextFile(
    `${project.dir}/prefect/jobs.yaml`,
    manifest("Owned by {{ prefect.blocks.secret.owner-token }}"),
  );

  const stolen: Request[] = [];
  await using elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (r) => {
    stolen.push(r);
    return new Response("thanks");
  });
  const elsewhereUrl = `http://127.0.0.1:${elsewhere.addr.port}`;

  const runs: { label: string; run: () => Promise<void> }[] = [];
  let index = 0;
  for (const config of CONFIGS) {
    for (const behaviour of BEHAVIOURS) {
      for (const command of ["plan", "apply"] as const) {
        if (command === "apply" && behaviour.code.apply === 0) continue; // would change the state
        for (const format of ["text", "json", "github"]) {
          const offset = OFFSETS[index++ % OFFSETS.length];
          const label = `${config.name} × ${behaviour.name} × ${command} × ${format} @${offset}`;
          runs.push({
            label,
            run: async () => {
              await using proxy = startFaultProxy(server.apiUrl);
              proxy.rules.push(...behaviour.rules(command, offset, elsewhereUrl));
              const result: CliResult = await runDeploy([command, "--format", format], {
                cwd: project.dir,
                env: {
                  PREFECT_API_URL: proxy.apiUrl,
                  PREFECT_CLIENT_MAX_RETRIES: "1",
                  ...config.env,
                },
              });
              const output = result.stdout + result.stderr;
              assertEquals(result.code, behaviour.code[command], `${label}:\n${output}`);
              assertEquals(findLeaks(output, config.secrets), [], `${label}:\n${output}`);
              assert(!/\n\s+at /.test(output), `${label}: stack trace\n${output}`);
              const sent = proxy.requests.map((r) => r.headers.get("x-token"));
              assert(sent.length > 0 && sent.every((v) => v === HEADER_TOKEN), label);
              if (behaviour.redacts?.(offset)) {
                assert(
                  output.includes("***"),
                  `${label}: the echo never reached output\n${output}`,
                );
              }
              if (behaviour.code[command] === 0) {
                assert(output.includes("***"), `${label}: the secret block value is in the diff`);
              }
            },
          });
        }
      }
    }
  }
  // A few at a time: the machine is shared, and each run is a process of its own.
  const failures: string[] = [];
  for (let i = 0; i < runs.length; i += 4) {
    await Promise.all(
      runs.slice(i, i + 4).map(async ({ label, run }) => {
        try {
          await run();
        } catch (error) {
          failures.push(`${label}: ${(error as Error).message}`);
        }
      }),
    );
  }
  assertEquals(failures, []);
  assertEquals(stolen.length, 0, "a request reached another origin");
  assert(runs.length >= 80, `${runs.length} runs`);
  // Nothing in the matrix wrote a deployment: every write was refused or never sent.
  const names = (await call<{ name: string }[]>("POST", "/deployments/filter", {})).map((d) =>
    d.name
  );
  assertEquals(names, ["existing"]);
});
