/**
 * `deno task bench:images`: what `deploy apply --build-image --push-image` costs over the Docker
 * commands it runs, side by side with `prefect deploy --all` doing the same build and push with
 * the real prefect-docker, against the same Docker engine, registry and Prefect server (the test
 * harnesses).
 *
 * Each round changes one file of the image and its tag, then measures, in turn, the same work
 * three ways, each into its own repository so each builds and pushes one new layer:
 *   docker      `docker build` + `docker image inspect` + `docker push`, as the steps run them
 *   deploy.ts   apply --build-image --push-image (the binary's permissions), N deployments
 *   prefect     prefect --no-prompt deploy --all, the same N deployments (prefect-docker 0.7.4)
 * The first round creates the deployments and is left out; the table has medians of the rest.
 *
 * Usage: deno task bench:images [N] [ROUNDS]   (default 10 deployments, 5 measured rounds)
 */
import { startDocker } from "../tests/docker_harness.ts";
import { startPrefectServer } from "../tests/prefect_server.ts";
import { startFaultProxy } from "../tests/fault_proxy.ts";
import { ensurePrefectDocker, PREFECT_DOCKER_VERSION } from "../tests/prefect_docker.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;
const deployments = Number(Deno.args[0] ?? 10);
const rounds = Number(Deno.args[1] ?? 5);

const DOCKERFILE = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY stamp /stamp\n";
const FLOW = "from prefect import flow\n\n\n@flow\ndef etl(mode: str = 'full'):\n    return mode\n";

function manifest(project: string, repository: string): string {
  const list = Array.from({ length: deployments }, (_, i) =>
    `  - name: ${project}-${i}
    entrypoint: flows/etl.py:etl
    work_pool:
      name: bench-docker
      job_variables:
        image: "{{ build-image.image }}"
`).join("");
  return `name: ${project}
build:
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      image_name: ${repository}
      tag: "{{ $DEPLOY_BENCH_TAG }}"
      dockerfile: Dockerfile
      path: image
push:
  - prefect_docker.deployments.steps.push_docker_image:
      image_name: "{{ build-image.image_name }}"
      tag: "{{ build-image.tag }}"
deployments:
${list}`;
}

await using engine = await startDocker();
await using server = await startPrefectServer();
await using proxy = startFaultProxy(server.apiUrl);
const prefectDocker = await ensurePrefectDocker();
await fetch(`${server.apiUrl}/work_pools/`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ name: "bench-docker", type: "docker" }),
}).then((r) => r.body?.cancel());

const dir = await Deno.makeTempDir({ prefix: "deploy-ts-images-bench-" });
await Deno.mkdir(`${dir}/flows`);
await Deno.mkdir(`${dir}/image`);
await Deno.mkdir(`${dir}/prefect`);
await Deno.writeTextFile(`${dir}/flows/etl.py`, FLOW);
await Deno.writeTextFile(`${dir}/image/Dockerfile`, DOCKERFILE);
await Deno.copyFile(engine.busybox, `${dir}/image/busybox`);
const repository = (name: string) => `${engine.registry}/bench/${name}`;
await Deno.writeTextFile(
  `${dir}/prefect/bench.yaml`,
  manifest("deploy-ts", repository("deploy-ts")),
);
await Deno.writeTextFile(`${dir}/prefect.yaml`, manifest("prefect", repository("prefect")));

interface Measure {
  ms: number;
  reads: number;
  writes: number;
}

async function timed(command: string, args: string[], env: Record<string, string>) {
  proxy.requests.length = 0;
  const start = performance.now();
  const output = await new Deno.Command(command, {
    args,
    cwd: dir,
    env: { PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1", DOCKER_HOST: engine.host, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${text.split("\n").slice(-20).join("\n")}`,
    );
  }
  return {
    ms,
    reads: proxy.requests.length - proxy.writes().length,
    writes: proxy.writes().length,
  };
}

async function dockerAlone(tag: string): Promise<Measure> {
  const image = `${repository("docker")}:${tag}`;
  const start = performance.now();
  await engine.docker([
    "build",
    "--pull",
    "--label",
    "io.prefect.version=3.8.8",
    "--file",
    `${dir}/image/Dockerfile`,
    "--tag",
    image,
    `${dir}/image`,
  ]);
  await engine.docker(["image", "inspect", "--format", "{{.Id}}", image]);
  await engine.docker(["push", image]);
  return { ms: performance.now() - start, reads: 0, writes: 0 };
}

const results: Record<string, Measure[]> = { docker: [], "deploy.ts": [], prefect: [] };
for (let round = 0; round <= rounds; round++) {
  const tag = `r${round}`;
  const stamp = (who: string) => Deno.writeTextFile(`${dir}/image/stamp`, `${who} ${round}\n`);
  await stamp("docker");
  const docker = await dockerAlone(tag);
  await stamp("deploy.ts");
  const ours = await timed(Deno.execPath(), [
    "run",
    "--frozen",
    "--cached-only",
    ...BINARY_PERMISSIONS,
    DEPLOY_TS,
    "apply",
    "--build-image",
    "--push-image",
  ], { PREFECT_API_URL: proxy.apiUrl, DEPLOY_BENCH_TAG: tag });
  await stamp("prefect");
  const theirs = await timed(`${server.bin}/prefect`, ["--no-prompt", "deploy", "--all"], {
    ...server.clientEnv,
    ...prefectDocker.env,
    PREFECT_API_URL: proxy.apiUrl,
    DEPLOY_BENCH_TAG: tag,
  });
  console.error(
    `round ${round}: docker ${docker.ms.toFixed(0)} ms, deploy.ts ${ours.ms.toFixed(0)} ms, ` +
      `prefect ${theirs.ms.toFixed(0)} ms${round === 0 ? " (creates; not counted)" : ""}`,
  );
  if (round === 0) continue;
  results.docker.push(docker);
  results["deploy.ts"].push(ours);
  results.prefect.push(theirs);
}
await Deno.remove(dir, { recursive: true });

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const docker = results.docker.map((m) => m.ms);
// Each round's difference to the docker commands of the same round, so drift between rounds of a
// busy machine cancels out; the range shows how much is left.
const over = (who: string) => results[who].map((m, i) => m.ms - docker[i]);
const range = (values: number[]) =>
  `${seconds(Math.min(...values))} … ${seconds(Math.max(...values))}`;
const row = (label: string, ms: string, extra: string, requests: string) =>
  `| ${label.padEnd(43)} | ${ms.padStart(7)} | ${extra.padStart(21)} | ${requests.padStart(14)} |`;
console.log(`
${deployments} deployment(s) sharing one top-level build and push; median of ${rounds} rounds;
prefect-docker ${PREFECT_DOCKER_VERSION}.

${row("run (one new layer built and pushed)", "time", "over docker (range)", "reads / writes")}
| ------------------------------------------- | ------: | --------------------: | -------------: |
${row("docker build + image inspect + push", seconds(median(docker)), "—", "—")}
${
  (["deploy.ts", "prefect"] as const).map((who) =>
    row(
      who === "deploy.ts"
        ? "deploy apply --build-image --push-image"
        : "prefect --no-prompt deploy --all",
      seconds(median(results[who].map((m) => m.ms))),
      `+${seconds(median(over(who)))} (${range(over(who))})`,
      `${median(results[who].map((m) => m.reads))} / ${median(results[who].map((m) => m.writes))}`,
    )
  ).join("\n")
}`);
