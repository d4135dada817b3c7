/**
 * A real, throwaway Docker engine and registry for tests and benchmarks.
 *
 * Debian's docker.io, docker-registry and busybox-static are installed with apt-get when missing
 * (as root, the way CI runs). The engine is `dockerd` with the vfs storage driver, no iptables
 * and no bridge network, its data root, exec root, pid file and socket in a temporary directory;
 * the registries are `docker-registry serve` on 127.0.0.1 on free ports, one open and one that
 * wants a login (htpasswd, a bcrypt hash made with Python's crypt). Nothing is pulled: images
 * are built FROM scratch with a static busybox copied in, or from a base image made here with
 * `docker import`. `stop()` (or `await using`) stops both and removes the directory.
 */
import { freePort, stopProcess } from "./prefect_server.ts";

const PACKAGES: Record<string, string> = {
  dockerd: "docker.io",
  "docker-registry": "docker-registry",
  busybox: "busybox-static",
};
const STARTUP_TIMEOUT_MS = 60_000;

function log(message: string) {
  console.error(`[docker-harness] ${message}`);
}

async function onPath(program: string): Promise<string | undefined> {
  const found = await new Deno.Command("sh", {
    args: ["-c", 'command -v "$1"', "sh", program],
    stdout: "piped",
    stderr: "null",
  }).output();
  return found.success ? new TextDecoder().decode(found.stdout).trim() : undefined;
}

async function aptGet(args: string[]): Promise<boolean> {
  const result = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) log(new TextDecoder().decode(result.stderr).trim().split("\n").at(-1)!);
  return result.success;
}

/** Installs whichever of dockerd, docker-registry and a static busybox is missing. */
export async function ensureDocker(): Promise<void> {
  const missing = [];
  for (const [program, pkg] of Object.entries(PACKAGES)) {
    if (!(await onPath(program))) missing.push(pkg);
  }
  if (!(await onPath("docker"))) missing.push("docker.io");
  if (!missing.length) return;
  const install = ["install", "-y", "--no-install-recommends", ...new Set(missing)];
  log(`installing ${[...new Set(missing)].join(", ")} with apt-get (once)`);
  if (!(await aptGet(install)) && !((await aptGet(["update"])) && (await aptGet(install)))) {
    throw new Error(`apt-get ${install.join(" ")} failed; the Docker tests need root and apt.`);
  }
}

export interface DockerEngine {
  /** unix:///…/docker.sock, for DOCKER_HOST. */
  host: string;
  /** 127.0.0.1:<port> of the open registry. */
  registry: string;
  /** A registry that takes only this user's pushes. */
  privateRegistry: { address: string; username: string; password: string };
  /** The static busybox binary, to copy into FROM scratch images. */
  busybox: string;
  /** Runs the docker CLI against this engine; throws with its output when it fails. */
  docker(args: string[], options?: { stdin?: Uint8Array; cwd?: string }): Promise<string>;
  /** The tags a registry lists for a repository (`GET /v2/<name>/tags/list`). */
  registryTags(repository: string, registry?: string): Promise<string[]>;
  /** A base image from a busybox root file system, tagged `name` (no registry can be pulled). */
  importBase(name: string): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startDocker(): Promise<DockerEngine> {
  await ensureDocker();
  const busybox = (await onPath("busybox"))!;
  const dir = await Deno.makeTempDir({ prefix: "deploy-ts-docker-" });
  const host = `unix://${dir}/docker.sock`;
  const daemon = new Deno.Command("dockerd", {
    args: [
      "--storage-driver",
      "vfs",
      "--iptables=false",
      "--bridge=none",
      "--data-root",
      `${dir}/data`,
      "--exec-root",
      `${dir}/exec`,
      "--pidfile",
      `${dir}/docker.pid`,
      "--host",
      host,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const daemonStderr = daemon.stderr.pipeTo(
    (await Deno.open(`${dir}/dockerd.err`, { write: true, create: true })).writable,
  );

  const registry = `127.0.0.1:${freePort()}`;
  const privateRegistry = {
    address: `127.0.0.1:${freePort()}`,
    username: "deploy",
    password: `pw-${crypto.randomUUID()}`,
  };
  const hash = await new Deno.Command("python3", {
    args: [
      "-W",
      "ignore",
      "-c",
      "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
      privateRegistry.password,
    ],
    stdout: "piped",
  }).output();
  await Deno.writeTextFile(
    `${dir}/htpasswd`,
    `${privateRegistry.username}:${new TextDecoder().decode(hash.stdout).trim()}\n`,
  );
  const serve = async (name: string, address: string, auth: string) => {
    await Deno.writeTextFile(
      `${dir}/${name}.yml`,
      `version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: ${dir}/${name}}}
http: {addr: "${address}", secret: deploy-ts-tests}
${auth}`,
    );
    return new Deno.Command("docker-registry", {
      args: ["serve", `${dir}/${name}.yml`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  };
  const registries = [
    await serve("registry", registry, ""),
    await serve(
      "private",
      privateRegistry.address,
      `auth: {htpasswd: {realm: deploy-ts, path: ${dir}/htpasswd}}\n`,
    ),
  ];

  const docker = async (args: string[], options: { stdin?: Uint8Array; cwd?: string } = {}) => {
    const child = new Deno.Command("docker", {
      args,
      cwd: options.cwd,
      env: { DOCKER_HOST: host },
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    }
    const output = await child.output();
    const text = new TextDecoder().decode(output.stdout);
    if (!output.success) {
      throw new Error(
        `docker ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}${text}`,
      );
    }
    return text;
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const child of [...registries, daemon]) await stopProcess(child, 15_000);
    await daemonStderr.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let exited = false;
  daemon.status.then(() => exited = true);
  while (true) {
    const ready = await docker(["version", "--format", "{{.Server.Version}}"]).then(
      () => true,
      () => false,
    );
    const answers = await Promise.all(
      [registry, privateRegistry.address].map((address) =>
        fetch(`http://${address}/v2/`).then(
          async (r) => (await r.body?.cancel(), true),
          () => false,
        )
      ),
    );
    if (ready && answers.every(Boolean)) break;
    if (exited || Date.now() > deadline) {
      const tail = (await Deno.readTextFile(`${dir}/dockerd.err`).catch(() => "")).split("\n")
        .slice(-15).join("\n");
      await stop();
      throw new Error(`dockerd or the registry did not start:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  return {
    host,
    registry,
    privateRegistry,
    busybox,
    docker,
    async registryTags(repository: string, address = registry) {
      const { username, password } = privateRegistry;
      const response = await fetch(`http://${address}/v2/${repository}/tags/list`, {
        headers: { authorization: `Basic ${btoa(`${username}:${password}`)}` },
      });
      if (response.status === 404) {
        await response.body?.cancel();
        return [];
      }
      const body = await response.json() as { tags: string[] | null };
      return (body.tags ?? []).sort();
    },
    async importBase(name: string) {
      // A root file system of busybox and its applets, as a tar stream made by busybox itself.
      const root = await Deno.makeTempDir({ dir, prefix: "rootfs-" });
      await Deno.mkdir(`${root}/bin`);
      await Deno.copyFile(busybox, `${root}/bin/busybox`);
      await Deno.chmod(`${root}/bin/busybox`, 0o755);
      for (const applet of ["sh", "ls", "cat", "echo", "test"]) {
        await Deno.symlink("busybox", `${root}/bin/${applet}`);
      }
      const tar = await new Deno.Command(busybox, {
        args: ["tar", "-c", "-C", root, "."],
        stdout: "piped",
      }).output();
      await docker(["import", "-", name], { stdin: tar.stdout });
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
