/**
 * A real, throwaway Prefect 3 server for tests, benchmarks and `deno task dev`.
 *
 * Prefect is pip-installed into `.venv/prefect-<version>` on first use, from
 * `tests/prefect-requirements.txt` (every package pinned: the one place the version is set).
 * Each server gets its own PREFECT_HOME with a SQLite database, listens on 127.0.0.1 on a free
 * port, has telemetry off, and is stopped by `stop()` or `await using`.
 */

const REPO_ROOT = new URL("../", import.meta.url).pathname;
const REQUIREMENTS = new URL("./prefect-requirements.txt", import.meta.url).pathname;

/** The pinned Prefect version, read from the requirements file. */
export const PREFECT_VERSION: string = (() => {
  const match = Deno.readTextFileSync(REQUIREMENTS).match(/^prefect==(\S+)$/m);
  if (!match) throw new Error(`${REQUIREMENTS} does not pin prefect`);
  return match[1];
})();

const VENV_DIR = `${REPO_ROOT}.venv/prefect-${PREFECT_VERSION}`;
const STARTUP_TIMEOUT_MS = 120_000;

function log(message: string) {
  console.error(`[prefect-harness] ${message}`);
}

async function run(command: string, args: string[], what: string) {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    throw new Error(`${what} failed:\n${text.split("\n").slice(-30).join("\n")}`);
  }
}

/**
 * Returns the virtual environment's bin directory, creating or updating the environment when
 * it is missing or was installed from another version of the requirements file. The marker,
 * written last, holds the requirements' digest.
 */
export function ensurePrefect(): Promise<string> {
  return ensureVenv(VENV_DIR, REQUIREMENTS, `Prefect ${PREFECT_VERSION}`);
}

/** A virtual environment at `dir` with exactly the pinned `requirements`; its bin directory. */
export async function ensureVenv(dir: string, requirements: string, what: string): Promise<string> {
  const bin = `${dir}/bin`;
  const marker = `${dir}/.installed`;
  const pinned = await Deno.readFile(requirements);
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", pinned)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const installed = await Deno.readTextFile(marker).catch(() => undefined);
  if (installed?.trim() === digest) return bin;
  const python = Deno.env.get("PYTHON") ?? "python3";
  const hasVenv = await Deno.stat(`${bin}/pip`).then(() => true, () => false);
  if (!hasVenv) {
    log(`installing ${what} into ${dir} (once; about a minute)`);
    await Deno.mkdir(`${REPO_ROOT}.venv`, { recursive: true });
    try {
      await run(python, ["-m", "venv", dir], `${python} -m venv`);
    } catch (error) {
      // Debian's python3 without python3-venv has no ensurepip; virtualenv brings its own pip.
      log(
        `${python} -m venv failed; trying virtualenv (${(error as Error).message.split("\n")[0]})`,
      );
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await run(
        python,
        ["-m", "pip", "install", "--quiet", "--user", "virtualenv"],
        "pip install virtualenv",
      );
      await run(python, ["-m", "virtualenv", "--quiet", dir], `${python} -m virtualenv`);
    }
  } else {
    log(`updating ${dir} to ${requirements}`);
  }
  await Deno.remove(marker).catch(() => {});
  await run(
    `${bin}/pip`,
    ["install", "--quiet", "--disable-pip-version-check", "-r", requirements],
    `pip install -r ${requirements}`,
  );
  await Deno.writeTextFile(marker, `${digest}\n`);
  log(`${what} ready`);
  return bin;
}

export interface PrefectServer {
  /** e.g. http://127.0.0.1:40123/api */
  apiUrl: string;
  /** The UI's address (served only when started with `ui: true`). */
  uiUrl: string;
  /** The server's PREFECT_HOME; its SQLite database and log live here. */
  home: string;
  /** The virtual environment's bin directory (prefect, python). */
  bin: string;
  /** Environment for Prefect client processes (CLI, workers) talking to this server. */
  clientEnv: Record<string, string>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ServerOptions {
  /** Serve the UI (the dev task); tests leave it off. */
  ui?: boolean;
  /** Run the scheduler service, which creates runs for schedules on its own. */
  scheduler?: boolean;
  /** Port to listen on; default a free one. */
  port?: number;
  /** Extra server settings, e.g. PREFECT_SERVER_API_AUTH_STRING. */
  env?: Record<string, string>;
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Settings shared by the server and its clients: no telemetry, no prompts. */
function quietEnv(home: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? home,
    PREFECT_HOME: home,
    DO_NOT_TRACK: "1",
    PREFECT_CLI_PROMPT: "false",
    PREFECT_SERVER_ANALYTICS_ENABLED: "false",
    PREFECT_LOGGING_LEVEL: "WARNING",
  };
}

export async function startPrefectServer(options: ServerOptions = {}): Promise<PrefectServer> {
  const bin = await ensurePrefect();
  const home = await Deno.makeTempDir({ prefix: "deploy-ts-prefect-" });
  const port = options.port ?? freePort();
  const apiUrl = `http://127.0.0.1:${port}/api`;
  const scheduler = String(options.scheduler ?? false);
  const env = {
    ...quietEnv(home),
    PREFECT_SERVER_DATABASE_CONNECTION_URL: `sqlite+aiosqlite:///${home}/prefect.db`,
    PREFECT_SERVER_UI_ENABLED: String(options.ui ?? false),
    PREFECT_UI_API_URL: apiUrl,
    PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED: scheduler,
    PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: "5",
    PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: "false",
    PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "false",
    PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED: "false",
    PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED: "false",
    PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: "false",
    PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED: "false",
    // Events are not needed here, and their writes compete for SQLite's lock (503s).
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: "false",
    ...options.env,
  };
  const child = new Deno.Command(`${bin}/prefect`, {
    args: ["server", "start", "--host", "127.0.0.1", "--port", String(port)],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logFile = await Deno.open(`${home}/server.log`, { write: true, create: true });
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await logFile.write(chunk);
  };
  const logging = Promise.all([drain(child.stdout), drain(child.stderr)])
    .finally(() => logFile.close());

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited in time
      }
    }, 10_000);
    await child.status;
    clearTimeout(killer);
    await logging.catch(() => {});
    if (!Deno.env.get("DEPLOY_KEEP_PREFECT_HOME")) {
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let exited = false;
  child.status.then(() => exited = true);
  while (true) {
    if (exited) {
      await logging.catch(() => {});
      const tail = (await Deno.readTextFile(`${home}/server.log`)).split("\n").slice(-25);
      await stop();
      throw new Error(`Prefect server exited during start-up:\n${tail.join("\n")}`);
    }
    try {
      const response = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Prefect server did not answer ${apiUrl}/health within 120 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  return {
    apiUrl,
    uiUrl: `http://127.0.0.1:${port}`,
    home,
    bin,
    clientEnv: { ...quietEnv(home), PREFECT_API_URL: apiUrl },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
