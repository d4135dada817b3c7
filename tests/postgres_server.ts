/**
 * A throwaway PostgreSQL for the Prefect test harness: Debian's `postgresql` (installed with
 * apt-get when missing and running as root), a cluster made by `initdb` in a temporary
 * directory, listening on 127.0.0.1 on a free port only, and removed by `stop()`. initdb and
 * the server refuse to run as root, so as root they run as the `postgres` user the Debian
 * package creates.
 */

export interface Postgres {
  /** SQLAlchemy URL for Prefect: postgresql+asyncpg://postgres@127.0.0.1:PORT/prefect */
  url: string;
  port: number;
  /** The cluster's directory (data, socket, log). */
  dir: string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEBIAN_BIN_ROOT = "/usr/lib/postgresql";

function log(message: string) {
  console.error(`[postgres-harness] ${message}`);
}

async function output(command: string, args: string[], what: string): Promise<string> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(`${what} failed: ${(error as Error).message}`);
  }
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!result.success) {
    const text = decode(result.stderr) + decode(result.stdout);
    throw new Error(`${what} failed:\n${text.split("\n").slice(-20).join("\n")}`);
  }
  return decode(result.stdout);
}

/** The newest Debian PostgreSQL bin directory (initdb, pg_ctl, postgres), if installed. */
async function findBinDir(): Promise<string | undefined> {
  const majors: number[] = [];
  try {
    for await (const entry of Deno.readDir(DEBIAN_BIN_ROOT)) {
      if (/^\d+$/.test(entry.name)) majors.push(Number(entry.name));
    }
  } catch {
    return undefined;
  }
  for (const major of majors.sort((a, b) => b - a)) {
    const dir = `${DEBIAN_BIN_ROOT}/${major}/bin`;
    const found = await Promise.all(
      ["initdb", "pg_ctl"].map((b) => Deno.stat(`${dir}/${b}`).then(() => true, () => false)),
    );
    if (found.every(Boolean)) return dir;
  }
  return undefined;
}

// `id` rather than Deno.uid(), which would need --allow-sys in every task that starts a server.
const isRoot = async () => (await output("id", ["-u"], "id -u")).trim() === "0";

/** PostgreSQL's bin directory, installing Debian's `postgresql` first when it is missing. */
export async function ensurePostgres(): Promise<string> {
  const found = await findBinDir();
  if (found) return found;
  if (!(await isRoot())) {
    throw new Error(
      "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); as root: " +
        "apt-get install postgresql",
    );
  }
  log("installing Debian's postgresql with apt-get (once)");
  const env = ["env", "DEBIAN_FRONTEND=noninteractive"];
  await output(env[0], [...env.slice(1), "apt-get", "update", "-qq"], "apt-get update");
  await output(
    env[0],
    [
      ...env.slice(1),
      "apt-get",
      "install",
      "-y",
      "-qq",
      "-o",
      "DPkg::Lock::Timeout=300",
      "--no-install-recommends",
      "postgresql",
    ],
    "apt-get install postgresql",
  );
  const installed = await findBinDir();
  if (!installed) throw new Error("apt-get installed postgresql, but no initdb was found");
  return installed;
}

/** How to run a PostgreSQL program: directly, or as root through `runuser -u postgres`. */
async function runner(): Promise<{ prefix: string[]; uid?: number; gid?: number }> {
  if (!(await isRoot())) return { prefix: [] };
  const id = async (flag: string) => Number((await output("id", [flag, "postgres"], "id")).trim());
  let uid: number, gid: number;
  try {
    [uid, gid] = [await id("-u"), await id("-g")];
  } catch {
    throw new Error(
      "initdb refuses to run as root and there is no `postgres` user to run it as " +
        "(Debian's postgresql package creates it)",
    );
  }
  return { prefix: ["runuser", "-u", "postgres", "--"], uid, gid };
}

export async function startPostgres(port: number): Promise<Postgres> {
  const bin = await ensurePostgres();
  const as = await runner();
  const dir = await Deno.makeTempDir({ prefix: "deploy-ts-postgres-" });
  if (as.uid !== undefined) await Deno.chown(dir, as.uid, as.gid!);
  const data = `${dir}/data`;
  const run = (program: string, args: string[], what: string) => {
    const [command, ...rest] = [...as.prefix, `${bin}/${program}`, ...args];
    return output(command, rest, what);
  };
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      // A throwaway cluster: no checkpoint needed.
      await run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"], "pg_ctl stop")
        .catch((error) => log((error as Error).message));
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await run(
      "initdb",
      ["-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
      "initdb",
    );
    const settings = [
      "-c listen_addresses=127.0.0.1",
      `-p ${port}`,
      `-c unix_socket_directories=${dir}`,
    ].join(" ");
    await run(
      "pg_ctl",
      ["-D", data, "-l", `${dir}/postgres.log`, "-o", settings, "-w", "-t", "60", "start"],
      "pg_ctl start",
    );
    started = true;
    await run(
      "psql",
      ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-qc", "CREATE DATABASE prefect"],
      "CREATE DATABASE",
    );
  } catch (error) {
    const tail = await Deno.readTextFile(`${dir}/postgres.log`).catch(() => "");
    await stop();
    throw new Error(`${(error as Error).message}\n${tail.split("\n").slice(-10).join("\n")}`);
  }
  return {
    url: `postgresql+asyncpg://postgres@127.0.0.1:${port}/prefect`,
    port,
    dir,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
