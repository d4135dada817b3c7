/**
 * Step outputs in templates, against a real Prefect server, with run_shell_script steps (no
 * Docker needed): which steps a deployment runs (its own build replaces the top-level one; the
 * top-level push still follows it, as in Prefect), where outputs are filled (fields, parameters,
 * job variables, pull steps; by step id and by bare name), a shared step run once, the server's
 * values kept without the flags, and what stops a run before any step runs or anything is written.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

const FLOWS = `from prefect import flow


@flow
def etl(mode: str = "full"):
    return mode
`;

const MANIFEST = `name: outputs
build:
  - prefect.deployments.steps.run_shell_script:
      id: version
      script: echo v1
      stream_output: false
push:
  - prefect.deployments.steps.run_shell_script:
      id: publish
      script: echo "published {{ version.stdout }}"
deployments:
  - name: shared-1
    entrypoint: flows/etl.py:etl
    version: "{{ version.stdout }}"
    parameters: {mode: "{{ publish.stdout }}"}
    work_pool:
      name: pool
      job_variables: {last: "{{ stdout }}"}
    pull:
      - prefect.deployments.steps.set_working_directory:
          directory: "/opt/app/{{ version.stdout }}"
  - name: shared-2
    entrypoint: flows/etl.py:etl
    version: "{{ version.stdout }}"
    work_pool: {name: pool}
  - name: own
    entrypoint: flows/etl.py:etl
    build:
      - prefect.deployments.steps.run_shell_script:
          id: version
          script: echo own-v1
    version: "{{ version.stdout }}"
    parameters: {mode: "{{ publish.stdout }}"}
    work_pool: {name: pool}
`;

interface ServerDeployment {
  version: string | null;
  parameters: Record<string, unknown>;
  job_variables: Record<string, unknown>;
  pull_steps: Record<string, Record<string, unknown>>[];
}

Deno.test("step outputs fill templates where Prefect fills them", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "pool", type: "process" });
  await using project = await tempProject({ "flows/etl.py": FLOWS, "prefect/m.yaml": MANIFEST });
  const deploy = (args: string[], dir = project.dir) =>
    runDeploy(args, {
      cwd: dir,
      env: { PREFECT_API_URL: server.apiUrl, DEPLOY_TOKEN: "not-a-secret" },
      permissions: BINARY_PERMISSIONS,
    });
  const byName = (name: string) => call<ServerDeployment>("GET", `/deployments/name/etl/${name}`);
  const headers = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("Running "));

  await t.step("--push-image alone cannot fill a push step's build outputs", async () => {
    const result = await deploy(["apply", "--push-image"]);
    assertEquals(result.code, 1);
    assertMatch(
      result.stderr,
      /prefect\/m\.yaml:10:15: error: "\{\{ version\.stdout \}\}" is the output of a build step, which runs only with --build-image\. \[step-not-run\]/,
    );
    assertEquals(headers(result.stderr), [], "no step ran");
  });

  await t.step("each deployment's steps run, shared ones once, and fill its fields", async () => {
    const result = await deploy(["apply", "--build-image", "--push-image"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(headers(result.stderr), [
      'Running build step run_shell_script "version" (prefect/m.yaml:3:5)',
      'Running push step run_shell_script "publish" (prefect/m.yaml:8:5)',
      'Running build step run_shell_script "version" (prefect/m.yaml:29:9)',
      // The top-level push runs after "own"'s build, with its output.
      'Running push step run_shell_script "publish" (prefect/m.yaml:8:5)',
    ]);
    assertStringIncludes(result.stderr, "  published own-v1\n", "streamed by default");
    assert(!result.stderr.includes("  v1\n"), "stream_output: false");

    const shared = await byName("shared-1");
    assertEquals(shared.version, "v1");
    assertEquals(shared.parameters, { mode: "published v1" });
    // A bare name is the last step's output of that name.
    assertEquals(shared.job_variables, { last: "published v1" });
    assertEquals(shared.pull_steps, [{
      "prefect.deployments.steps.set_working_directory": { directory: "/opt/app/v1" },
    }]);
    assertEquals((await byName("shared-2")).version, "v1");
    const own = await byName("own");
    assertEquals([own.version, own.parameters], ["own-v1", { mode: "published own-v1" }]);
  });

  await t.step("without the flags, those fields keep the server's values and say so", async () => {
    await Deno.writeTextFile(
      `${project.dir}/prefect/m.yaml`,
      MANIFEST.replaceAll("v1", "v2"),
    );
    const result = await deploy(["plan", "--detailed-exitcode"]);
    assertEquals(result.code, 0, result.stdout + result.stderr);
    const kept = result.stdout.split("\n").filter((l) => l.startsWith("  etl/"));
    assertEquals(kept, [
      '  etl/shared-1  pull_steps[0].prefect.deployments.steps.set_working_directory.directory = "/opt/app/v1"',
      '  etl/shared-1  job_variables.last = "published v1"',
      '  etl/shared-1  version = "v1"',
      '  etl/shared-1  parameters.mode = "published v1"',
      '  etl/shared-2  version = "v1"',
      '  etl/own  version = "own-v1"',
      '  etl/own  parameters.mode = "published own-v1"',
    ]);
    const rebuilt = await deploy(["plan", "--build-image", "--push-image", "--format", "json"]);
    assertEquals(rebuilt.code, 0, rebuilt.stderr);
    const own = JSON.parse(rebuilt.stdout).deployments.find((d: { name: string }) =>
      d.name === "own"
    );
    assertEquals(own.changes.map((c: { field: string }) => c.field), [
      "version",
      "parameters.mode",
    ]);
  });

  await t.step(
    "a step deploy.ts does not run, or a missing variable, stops before any step",
    async () => {
      await using other = await tempProject({
        "flows/etl.py": FLOWS,
        "prefect/m.yaml": `name: outputs
build:
  - prefect.deployments.steps.run_shell_script:
      script: echo "{{ $DEPLOY_MISSING }} {{ prefect.variables.nope }}"
push:
  - prefect_aws.deployments.steps.push_to_s3:
      id: push-code
      bucket: flows
      folder: etl
deployments:
  - name: s3
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool}
    pull:
      - prefect_aws.deployments.steps.pull_from_s3:
          bucket: flows
          folder: "{{ push-code.folder }}"
`,
      });
      const foreign = await deploy(["apply", "--build-image", "--push-image"], other.dir);
      assertEquals(foreign.code, 1);
      assertMatch(
        foreign.stderr,
        /prefect\/m\.yaml:6:5: error: deploy\.ts does not run "prefect_aws\.deployments\.steps\.push_to_s3" .*\[step-not-native\]/,
      );
      const missing = await deploy(["apply", "--build-image"], other.dir);
      assertEquals(missing.code, 1);
      assertMatch(
        missing.stderr,
        /m\.yaml:4:15: error: Environment variable "DEPLOY_MISSING" is not set/,
      );
      assertMatch(missing.stderr, /m\.yaml:4:15: error: Prefect variable "nope" does not exist/);
      for (const result of [foreign, missing]) assertEquals(headers(result.stderr), []);
      // A pull step that reads a push output needs that push once, as a new deployment.
      const create = await deploy(["apply"], other.dir);
      assertMatch(
        create.stderr,
        /m\.yaml:17:19: error: "\{\{ push-code\.folder \}\}" is the output of a push step, and this deployment does not exist on the server yet: run with --build-image --push-image to create it\./,
      );
    },
  );

  await t.step("block values a step uses are hidden in what it prints", async () => {
    const secretType = await call<{ id: string }>("GET", "/block_types/slug/secret");
    const [schema] = await call<{ id: string }[]>("POST", "/block_schemas/filter", {
      block_schemas: { block_type_id: { any_: [secretType.id] } },
    });
    await call("POST", "/block_documents/", {
      name: "token",
      block_type_id: secretType.id,
      block_schema_id: schema.id,
      data: { value: "s3cr3t-value" },
    });
    await using other = await tempProject({
      "flows/etl.py": FLOWS,
      "prefect/m.yaml": `name: outputs
build:
  - prefect.deployments.steps.run_shell_script:
      script: sh -c 'echo "token=$TOKEN"; exit 4'
      env: {TOKEN: "{{ prefect.blocks.secret.token }}"}
deployments:
  - name: secret
    entrypoint: flows/etl.py:etl
    work_pool: {name: pool}
`,
    });
    const result = await deploy(["apply", "--build-image"], other.dir);
    assertEquals(result.code, 1);
    assertStringIncludes(result.stderr, "  token=***\n");
    assertStringIncludes(
      result.stderr,
      "m.yaml:3:5: error: Build step run_shell_script failed: `run_shell_script` failed with " +
        "error code 4",
    );
    assertStringIncludes(result.stderr, "  Last lines of its output:\n    token=***\n");
    assert(!result.stderr.includes("s3cr3t-value"), "the secret never appears");
  });
});
