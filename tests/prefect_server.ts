/**
 * A real, throwaway Prefect 3 server for tests, benchmarks and `deno task dev`.
 *
 * Any release in PREFECT_VERSIONS can run; DEPLOY_TEST_PREFECT_VERSION picks one (default the
 * pinned release). Each has its own pin set, `tests/prefect-pins/<version>.txt` (every package
 * pinned, with the reason for each constraint), and is pip-installed on first use into its own
 * `.venv/prefect-<version>-<digest of the pins>`, so a changed pin set gets a new environment
 * instead of altering one in use. Each server gets its own PREFECT_HOME, listens on 127.0.0.1 on
 * a free port, has telemetry off, and is stopped by `stop()` or `await using`. Its database is
 * SQLite in PREFECT_HOME, or with DEPLOY_TEST_DATABASE=postgres (or `database: "postgres"`) a
 * throwaway PostgreSQL of its own (tests/postgres_server.ts).
 */
import { type Postgres, startPostgres } from "./postgres_server.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;
const PINS_DIR = new URL("./prefect-pins/", import.meta.url).pathname;

/** Every Prefect release the harness runs, oldest first; each has a pin file. */
export const PREFECT_VERSIONS = [
  "3.0.11",
  "3.1.15",
  "3.2.15",
  "3.4.25",
  "3.6.29",
  "3.8.8",
  "3.9.1",
] as const;

/** The release the whole suite, the dev task, the benchmarks and the app image use. */
export const PINNED_PREFECT_VERSION = "3.8.8";

/**
 * A release named as listed, by its minor (`3.1`), or as `oldest`, `newest` or `pinned`;
 * anything else throws, naming the releases there are.
 */
export function resolveVersion(name: string): string {
  const wanted = name.trim();
  const aliases: Record<string, string> = {
    oldest: PREFECT_VERSIONS[0],
    newest: PREFECT_VERSIONS[PREFECT_VERSIONS.length - 1],
    pinned: PINNED_PREFECT_VERSION,
  };
  const found = aliases[wanted] ??
    PREFECT_VERSIONS.find((v) => v === wanted || v.startsWith(`${wanted}.`));
  if (!found) {
    throw new Error(
      `DEPLOY_TEST_PREFECT_VERSION "${name}" is not a release the harness runs; use one of ` +
        `${PREFECT_VERSIONS.join(", ")} (or a minor such as 3.1, or oldest, newest, pinned).`,
    );
  }
  return found;
}

/** The release this process runs: DEPLOY_TEST_PREFECT_VERSION, else the pinned one. */
export const PREFECT_VERSION: string = resolveVersion(
  Deno.env.get("DEPLOY_TEST_PREFECT_VERSION") || PINNED_PREFECT_VERSION,
);

export type Database = "sqlite" | "postgres";

/** The backend servers get unless told otherwise: DEPLOY_TEST_DATABASE, default SQLite. */
export const DATABASE: Database = (() => {
  const value = (Deno.env.get("DEPLOY_TEST_DATABASE") || "sqlite").toLowerCase();
  if (value !== "sqlite" && value !== "postgres") {
    throw new Error(`DEPLOY_TEST_DATABASE must be sqlite or postgres, not "${value}".`);
  }
  return value;
})();

export const pinsFile = (version: string) => `${PINS_DIR}${version}.txt`;

/** The pin lines of a requirements file (`name==version`), comments and blanks left out. */
export function pinLines(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
}

async function digestOf(text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

const STARTUP_TIMEOUT_MS = 120_000;

function log(message: string) {
  console.error(`[prefect-harness] ${message}`);
}

async function run(command: string, args: string[], what: string): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!output.success) {
    const text = decode(output.stderr) + decode(output.stdout);
    throw new Error(`${what} failed:\n${text.split("\n").slice(-30).join("\n")}`);
  }
  return decode(output.stdout);
}

/** SIGTERM, then SIGKILL if `child` has not exited within `graceMs`; resolves once it has. */
export async function stopProcess(child: Deno.ChildProcess, graceMs: number): Promise<void> {
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
  }, graceMs);
  await child.status;
  clearTimeout(killer);
}

/** A new, empty virtual environment at `dir`. */
export async function createVenv(dir: string): Promise<void> {
  const python = Deno.env.get("PYTHON") ?? "python3";
  await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
  try {
    await run(python, ["-m", "venv", dir], `${python} -m venv`);
  } catch (error) {
    // Debian's python3 without python3-venv has no ensurepip; virtualenv brings its own pip.
    log(`${python} -m venv failed; trying virtualenv (${(error as Error).message.split("\n")[0]})`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await run(
      python,
      ["-m", "pip", "install", "--quiet", "--user", "virtualenv"],
      "pip install virtualenv",
    );
    await run(python, ["-m", "virtualenv", "--quiet", dir], `${python} -m virtualenv`);
  }
}

/**
 * A virtual environment at `dir` with exactly the pinned `requirements`; its bin directory.
 * The marker, written last, holds the requirements file's digest. With `exact`, a package the
 * pins leave out fails the install instead of being resolved silently.
 */
export async function ensureVenv(
  dir: string,
  requirements: string,
  what: string,
  { exact = false }: { exact?: boolean } = {},
): Promise<string> {
  const bin = `${dir}/bin`;
  const marker = `${dir}/.installed`;
  const digest = await digestOf(await Deno.readTextFile(requirements));
  const isInstalled = async () =>
    (await Deno.readTextFile(marker).catch(() => undefined))?.trim() === digest;
  if (await isInstalled()) return bin;
  // CI installs releases while test files that need them run: one installer per environment,
  // the others wait for it and then find its marker.
  await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
  using installLock = await Deno.open(`${dir}.lock`, { create: true, write: true });
  await installLock.lock(true);
  if (await isInstalled()) return bin;
  if (await Deno.stat(`${bin}/pip`).then(() => false, () => true)) {
    log(`installing ${what} into ${dir} (once; about a minute)`);
    await createVenv(dir);
  } else {
    log(`updating ${dir} to ${requirements}`);
  }
  await Deno.remove(marker).catch(() => {});
  const pip = (args: string[], step: string) =>
    run(`${bin}/pip`, ["--disable-pip-version-check", ...args], step);
  await pip(
    ["install", "--quiet", ...(exact ? ["--no-deps"] : []), "-r", requirements],
    `pip install -r ${requirements}`,
  );
  // Catches a pin set that is incomplete or inconsistent (a dependency missing or of a version
  // another package does not accept).
  if (exact) await pip(["check"], `pip check (the pins in ${requirements})`);
  await Deno.writeTextFile(marker, `${digest}\n`);
  log(`${what} ready`);
  return bin;
}

/** The bin directory of `version`'s virtual environment, installing it on first use. */
export async function ensurePrefect(version: string = PREFECT_VERSION): Promise<string> {
  const file = pinsFile(version);
  const pins = pinLines(await Deno.readTextFile(file));
  if (!pins.includes(`prefect==${version}`)) throw new Error(`${file} does not pin prefect`);
  // Named by the pins alone, so editing a reason in the file does not make a new environment.
  const dir = `${REPO_ROOT}.venv/prefect-${version}-${
    (await digestOf(pins.join("\n"))).slice(0, 8)
  }`;
  return await ensureVenv(dir, file, `Prefect ${version}`, { exact: true });
}

export interface PrefectServer {
  /** e.g. http://127.0.0.1:40123/api */
  apiUrl: string;
  /** The UI's address (served only when started with `ui: true`). */
  uiUrl: string;
  /** The server's PREFECT_HOME; its log (and SQLite database) live here. */
  home: string;
  /** The virtual environment's bin directory (prefect, python). */
  bin: string;
  /** The Prefect release it runs. */
  version: string;
  database: Database;
  /** Its SQLAlchemy URL (the PostgreSQL one has no password: trust on 127.0.0.1). */
  databaseUrl: string;
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
  /** Default DEPLOY_TEST_DATABASE, else SQLite. */
  database?: Database;
  /** Default DEPLOY_TEST_PREFECT_VERSION, else the pinned release. */
  version?: string;
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
  const version = options.version ?? PREFECT_VERSION;
  const database = options.database ?? DATABASE;
  const bin = await ensurePrefect(version);
  const home = await Deno.makeTempDir({ prefix: "deploy-ts-prefect-" });
  let postgres: Postgres | undefined;
  try {
    postgres = database === "postgres" ? await startPostgres(freePort()) : undefined;
  } catch (error) {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    throw error;
  }
  const port = options.port ?? freePort();
  const apiUrl = `http://127.0.0.1:${port}/api`;
  const scheduler = String(options.scheduler ?? false);
  const databaseUrl = postgres?.url ?? `sqlite+aiosqlite:///${home}/prefect.db`;
  // Setting names as of Prefect 3.1; 3.0.11 reads them too (as aliases of its own).
  const env = {
    ...quietEnv(home),
    PREFECT_SERVER_DATABASE_CONNECTION_URL: databaseUrl,
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
    await stopProcess(child, 10_000);
    await logging.catch(() => {});
    await postgres?.stop();
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
      throw new Error(`Prefect ${version} server exited during start-up:\n${tail.join("\n")}`);
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
    version,
    database,
    databaseUrl,
    clientEnv: { ...quietEnv(home), PREFECT_API_URL: apiUrl },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

// `deno run -A tests/prefect_server.ts [VERSION...]` installs releases ahead of use (CI does, in
// the background of the main suite): a name as DEPLOY_TEST_PREFECT_VERSION takes, default the
// pinned one.
if (import.meta.main) {
  for (const name of Deno.args.length ? Deno.args : [PINNED_PREFECT_VERSION]) {
    await ensurePrefect(resolveVersion(name));
  }
}
