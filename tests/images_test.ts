/**
 * `--build-image` and `--push-image` end to end, with the compiled binary's permissions: a real
 * Docker engine and registries (tests/docker_harness.ts), a real Prefect server, and a recording
 * proxy between deploy.ts and the server to prove which runs write nothing. Build steps, push
 * steps (one with a docker-registry-credentials block), step outputs in job variables, a step
 * shared by two deployments run once, a deployment's own steps replacing the top-level ones,
 * fields kept from the server without the flags, and a failing build that stops everything.
 * Last, this repository's own report/daily, built from flows/Dockerfile.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { api, type CliResult, REPO_ROOT, runDeploy, tempProject } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { startDocker } from "./docker_harness.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

const FLOWS = `from prefect import flow


@flow
def etl(mode: str = "full"):
    return mode
`;

const DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
CMD ["/bin/busybox", "echo", "built by deploy.ts"]
`;

function manifest(registry: string, privateRegistry: string): string {
  return `name: images
build:
  - prefect.deployments.steps.run_shell_script:
      id: version
      script: cat VERSION
      stream_output: false
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      requires: prefect-docker>=0.7
      image_name: ${registry}/acme/flows
      tag: "{{ version.stdout }}"
      additional_tags: [latest]
      dockerfile: Dockerfile
      path: image
push:
  - prefect_docker.deployments.steps.push_docker_image:
      image_name: "{{ build-image.image_name }}"
      tag: "{{ build-image.tag }}"
      additional_tags: "{{ build-image.additional_tags }}"
deployments:
  - name: nightly
    entrypoint: flows/etl.py:etl
    work_pool:
      name: docker-pool
      job_variables:
        image: "{{ build-image.image }}"
  - name: hourly
    entrypoint: flows/etl.py:etl
    parameters: {mode: hourly}
    work_pool:
      name: docker-pool
      job_variables: {image: "{{ build-image.image }}", env: {MODE: hourly}}
  - name: private
    entrypoint: flows/etl.py:etl
    work_pool:
      name: docker-pool
      job_variables: {image: "{{ private-image.image }}"}
    build:
      - prefect_docker.deployments.steps.build_docker_image:
          id: private-image
          image_name: ${privateRegistry}/acme/private
          tag: "1"
          dockerfile: Dockerfile
          path: image
    push:
      - prefect_docker.deployments.steps.push_docker_image:
          image_name: "{{ private-image.image_name }}"
          tag: "{{ private-image.tag }}"
          credentials: "{{ prefect.blocks.docker-registry-credentials.private-registry }}"
`;
}

interface ServerDeployment {
  name: string;
  job_variables: Record<string, unknown>;
  updated: string;
}

Deno.test("build and push steps against a real Docker engine, registry and Prefect server", async (t) => {
  await using engine = await startDocker();
  await using server = await startPrefectServer();
  await using proxy = startFaultProxy(server.apiUrl);
  const call = api(server.apiUrl);
  await call("POST", "/work_pools/", { name: "docker-pool", type: "docker" });
  const credentialsType = await call<{ id: string }>(
    "GET",
    "/block_types/slug/docker-registry-credentials",
  );
  const [credentialsSchema] = await call<{ id: string }[]>("POST", "/block_schemas/filter", {
    block_schemas: { block_type_id: { any_: [credentialsType.id] } },
  });
  const { address: privateRegistry, username, password } = engine.privateRegistry;
  await call("POST", "/block_documents/", {
    name: "private-registry",
    block_type_id: credentialsType.id,
    block_schema_id: credentialsSchema.id,
    data: { username, password, registry_url: privateRegistry, reauth: true },
  });

  await using project = await tempProject({
    "flows/etl.py": FLOWS,
    "image/Dockerfile": DOCKERFILE,
    "image/busybox": await Deno.readFile(engine.busybox),
    VERSION: "v1\n",
    "prefect/images.yaml": manifest(engine.registry, privateRegistry),
  });
  await Deno.chmod(`${project.dir}/image/busybox`, 0o755);
  const manifestPath = `${project.dir}/prefect/images.yaml`;
  const lineOf = async (text: string) =>
    (await Deno.readTextFile(manifestPath)).split("\n").findIndex((l) => l.includes(text)) + 1;
  const deploy = (args: string[]) =>
    runDeploy(args, {
      cwd: project.dir,
      env: { PREFECT_API_URL: proxy.apiUrl, DOCKER_HOST: engine.host },
      permissions: BINARY_PERMISSIONS,
    });
  const writesDuring = async (args: string[]): Promise<[CliResult, number]> => {
    proxy.requests.length = 0;
    const result = await deploy(args);
    return [result, proxy.writes().length];
  };
  const image = `${engine.registry}/acme/flows`;
  const byName = (name: string) => call<ServerDeployment>("GET", `/deployments/name/etl/${name}`);

  await t.step(
    "without --build-image, a new deployment that needs a step output is an error",
    async () => {
      const [result, writes] = await writesDuring(["apply"]);
      assertEquals(result.code, 1, result.stdout);
      const line = await lineOf('image: "{{ build-image.image }}"');
      assertMatch(
        result.stderr,
        new RegExp(
          `prefect/images\\.yaml:${line}:16: error: "\\{\\{ build-image\\.image \\}\\}" is the ` +
            "output of a build step, and this deployment does not exist on the server yet: run " +
            "with --build-image to create it\\.",
        ),
      );
      assertEquals(writes, 0);
      assertEquals(await engine.registryTags("acme/flows"), []);
      assertEquals((await engine.docker(["images", "-q"])).trim(), "", "nothing was built");
    },
  );

  await t.step("apply --build-image --push-image builds once, pushes, and creates", async () => {
    const result = await deploy(["apply", "--build-image", "--push-image"]);
    assertEquals(result.code, 0, result.stderr);
    assertStringIncludes(
      result.stdout,
      "Apply: 3 created, 0 updated, 0 deleted, 0 unchanged.",
    );
    // The top-level build serves two deployments and runs once; "private" has its own.
    const headers = result.stderr.split("\n").filter((l) => l.startsWith("Running "));
    assertEquals(headers, [
      `Running build step run_shell_script "version" (prefect/images.yaml:3:5)`,
      `Running build step build_docker_image "build-image" (prefect/images.yaml:7:5)`,
      `Running push step push_docker_image (prefect/images.yaml:16:5)`,
      `Running build step build_docker_image "private-image" (prefect/images.yaml:${
        await lineOf(
          "id: private-image",
        ) - 1
      }:9)`,
      `Running push step push_docker_image (prefect/images.yaml:${
        await lineOf(
          'image_name: "{{ private-image.image_name }}"',
        ) - 1
      }:9)`,
    ]);
    assertStringIncludes(result.stderr, `  Successfully tagged ${image}:v1`);
    assert(!`${result.stdout}${result.stderr}`.includes(password), "the password is never shown");

    assertEquals(await engine.registryTags("acme/flows"), ["latest", "v1"]);
    assertEquals(await engine.registryTags("acme/private", privateRegistry), ["1"]);
    assertEquals((await byName("nightly")).job_variables, { image: `${image}:v1` });
    assertEquals((await byName("hourly")).job_variables, {
      image: `${image}:v1`,
      env: { MODE: "hourly" },
    });
    assertEquals((await byName("private")).job_variables, {
      image: `${privateRegistry}/acme/private:1`,
    });
    // The image is real: it runs.
    const ran = await engine.docker(["run", "--rm", "--network", "none", `${image}:v1`]);
    assertEquals(ran.trim(), "built by deploy.ts");
  });

  await t.step("a second apply without the flags writes nothing", async () => {
    const [result, writes] = await writesDuring(["apply"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(writes, 0);
    assertStringIncludes(result.stdout, "Apply: 0 created, 0 updated, 0 deleted, 3 unchanged.");
    assertStringIncludes(result.stderr, `  etl/nightly  job_variables.image = "${image}:v1"`);
  });

  await t.step(
    "after a build whose image reference is unchanged, apply writes nothing",
    async () => {
      const [result, writes] = await writesDuring([
        "apply",
        "--build-image",
        "--push-image",
        "--format",
        "json",
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(writes, 0);
      const report = JSON.parse(result.stdout);
      assertEquals(report.requests.write, 0);
      assertEquals(report.summary.unchanged, 3);
    },
  );

  await t.step(
    "a new tag: plan without the flags keeps the server's, with them shows it",
    async () => {
      await Deno.writeTextFile(`${project.dir}/VERSION`, "v2\n");
      const kept = await deploy(["plan", "--detailed-exitcode"]);
      assertEquals(kept.code, 0, kept.stdout + kept.stderr);
      assertStringIncludes(kept.stdout, "Kept as on the server");
      assertStringIncludes(kept.stdout, `  etl/hourly  job_variables.image = "${image}:v1"`);
      const json = JSON.parse((await deploy(["plan", "--format", "json"])).stdout);
      assertEquals(
        json.deployments.map((d: { name: string; kept_from_server?: string[] }) => [
          d.name,
          d.kept_from_server,
        ]).sort(),
        [["hourly", ["job_variables.image"]], ["nightly", ["job_variables.image"]], [
          "private",
          ["job_variables.image"],
        ]],
      );

      const built = await deploy(["plan", "--build-image", "--detailed-exitcode"]);
      assertEquals(built.code, 2, built.stdout + built.stderr);
      assertStringIncludes(
        built.stdout,
        `      job_variables.image: "${image}:v1" → "${image}:v2"`,
      );
      assertStringIncludes(
        built.stdout,
        "Plan: 0 to create, 2 to update, 0 to delete, 1 unchanged.",
      );
      assertEquals(
        await engine.registryTags("acme/flows"),
        ["latest", "v1"],
        "plan pushes nothing",
      );
    },
  );

  await t.step("a failing build stops everything before any write", async () => {
    await Deno.writeTextFile(`${project.dir}/VERSION`, "v3\n");
    await Deno.writeTextFile(
      `${project.dir}/image/Dockerfile`,
      DOCKERFILE.replace("CMD", 'RUN ["/bin/busybox", "sh", "-c", "echo broken >&2; exit 7"]\nCMD'),
    );
    const before = await byName("nightly");
    const [result, writes] = await writesDuring(["apply", "--build-image", "--push-image"]);
    assertEquals(result.code, 1, result.stdout);
    assertEquals(writes, 0);
    assertMatch(
      result.stderr,
      /prefect\/images\.yaml:7:5: error: Build step build_docker_image "build-image" failed: docker build exited with status \d+\. \[step-failed\]\n {2}Last lines of its output:\n( {4}.*\n)* {4}.*broken/,
    );
    assertEquals(
      result.stderr.trim().split("\n").at(-1),
      "error: Stopped before any change: 1 error.",
    );
    assertEquals(await engine.registryTags("acme/flows"), ["latest", "v1"]);
    assertEquals(await byName("nightly"), before);
  });

  await t.step(
    "this repository's report/daily builds from flows/Dockerfile and applies",
    async () => {
      // Its base image, made here: nothing can be pulled.
      await engine.importBase("prefecthq/prefect:3.8.8-python3.11");
      const repository = `${engine.registry}/deploy-ts-example/flows`;
      const result = await runDeploy(
        ["apply", "-n", "report/daily", "--build-image", "--push-image", "--strict"],
        {
          cwd: REPO_ROOT,
          env: {
            PREFECT_API_URL: server.apiUrl,
            DOCKER_HOST: engine.host,
            DEPLOY_IMAGE_REPOSITORY: repository,
          },
          permissions: BINARY_PERMISSIONS,
        },
      );
      assertEquals(result.code, 0, result.stderr);
      const commit = new TextDecoder().decode(
        (await new Deno.Command("git", {
          args: ["rev-parse", "--short", "HEAD"],
          cwd: REPO_ROOT,
          stdout: "piped",
        }).output()).stdout,
      ).trim();
      assertEquals(await engine.registryTags("deploy-ts-example/flows"), [commit]);
      const daily = await call<ServerDeployment & { pull_steps: unknown[] }>(
        "GET",
        "/deployments/name/report/daily",
      );
      assertEquals(daily.job_variables, { image: `${repository}:${commit}` });
      const listed = await engine.docker([
        "run",
        "--rm",
        "--network",
        "none",
        `${repository}:${commit}`,
        "ls",
        "/opt/prefect/deploy-ts-example/flows",
      ]);
      assertStringIncludes(listed, "report.py");
    },
  );
});
