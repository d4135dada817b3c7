/**
 * `deno task dev`: a throwaway local Prefect server (UI on), this repository's manifests
 * applied to it, and the server kept running until Ctrl-C. The work pools the manifests name
 * are created as process pools, as a developer would by hand.
 */
import { defaultOptions, effectiveSteps, validate } from "../deploy.ts";
import type { DeployTsManifest } from "../schema/types.ts";
import { freePort, startPrefectServer } from "../tests/prefect_server.ts";
import { BINARY_PERMISSIONS } from "./compile.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;
Deno.chdir(REPO_ROOT);

const manifests = await validate({ ...defaultOptions(), command: "validate", strict: true });
// Deployments that run from an image their build steps make need Docker and a registry
// (`apply --build-image --push-image`) to be created. The dev server gets them registered with a
// placeholder image first, so plan and apply work on every manifest without Docker (a field a
// build fills keeps the server's value).
const [fromImages] = manifests.deployments.reduce(
  ([images, others], d) =>
    effectiveSteps(d.file.data as DeployTsManifest, d.spec, d.index).build.steps.length
      ? [[...images, d], others]
      : [images, [...others, d]],
  [[], []] as [typeof manifests.deployments, typeof manifests.deployments],
);
const pools = [
  ...new Set(
    manifests.deployments.map((d) => d.spec.work_pool?.name).filter((n): n is string => !!n),
  ),
];

const preferred = Number(Deno.env.get("DEPLOY_DEV_PORT") ?? 4200);
const port = isFree(preferred) ? preferred : freePort();
console.error(`Starting a Prefect server on 127.0.0.1:${port} (first run installs Prefect)…`);
const server = await startPrefectServer({ ui: true, scheduler: true, port });

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.error("\nStopping the Prefect server…");
  await server.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

const api = async (path: string, body: unknown) => {
  const response = await fetch(`${server.apiUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { ok: response.ok, status: response.status, data: await response.json() };
};
const PLACEHOLDER_IMAGE = "deploy-ts-dev/placeholder:not-built";
for (const d of fromImages) {
  const flow = await api("/flows/", { name: d.flow });
  await api("/deployments/", {
    name: d.name,
    flow_id: flow.data.id,
    tags: [`managed-by:deploy.ts/${manifests.project.name}`],
    job_variables: { image: PLACEHOLDER_IMAGE },
  });
}

for (const pool of pools) {
  const response = await fetch(`${server.apiUrl}/work_pools/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: pool, type: "process" }),
  });
  await response.body?.cancel();
  if (!response.ok && response.status !== 409) {
    console.error(`Could not create work pool "${pool}": ${response.status}`);
  }
}

const apply = await new Deno.Command(Deno.execPath(), {
  // The compiled binary's permissions, so dev behaves as the release command will.
  args: [
    "run",
    "--frozen",
    ...BINARY_PERMISSIONS,
    "deploy.ts",
    "apply",
    "--strict",
  ],
  env: { PREFECT_API_URL: server.apiUrl },
  stdout: "inherit",
  stderr: "inherit",
}).output();

console.log(`
Prefect UI:   ${server.uiUrl}
Prefect API:  ${server.apiUrl}

In another terminal:
  export PREFECT_API_URL=${server.apiUrl}
  tools/deno task deploy plan          # after editing prefect/*.yaml
  tools/deno task deploy apply
  ${server.bin}/prefect worker start --pool ${pools[0] ?? "<pool>"} --type process

Press Ctrl-C to stop the server (its database is thrown away).`);
for (const d of fromImages) {
  console.log(
    `${d.flow}/${d.name} runs from an image its build steps make: registered here with the ` +
      `placeholder image ${PLACEHOLDER_IMAGE}; apply --build-image --push-image builds and ` +
      "pushes the real one (Docker, a registry and DEPLOY_IMAGE_REPOSITORY).",
  );
}
if (!apply.success) console.error("\nThe apply failed; the server keeps running so you can look.");

await new Promise(() => {});

function isFree(port: number): boolean {
  try {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    listener.close();
    return true;
  } catch {
    return false;
  }
}
