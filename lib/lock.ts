/**
 * A lock held on the Prefect server itself, so that two applies of one project and environment —
 * from any two machines — never interleave their writes.
 *
 * The lock is a Prefect variable. Creating a variable is atomic (its name is unique: a second
 * create gets 409), deleting one by ID removes exactly that lock and no later one, and every
 * PATCH moves its `updated` timestamp, which is the holder's heartbeat. A lock whose heartbeat is
 * older than its time-to-live belongs to a killed apply and may be broken. Ages are measured on
 * the server's clock (its `Date` header against `updated`), so clocks of different machines
 * never have to agree. Variables and these endpoints exist unchanged in every Prefect 3 release;
 * global concurrency limits do not offer a lease before 3.4, and a slot that decays while its
 * holder is still applying would let a second apply in.
 */
import { PrefectApiError, type PrefectClient } from "./prefect_client.ts";

export interface LockOptions {
  project: string;
  /** null: the default environment. */
  environment: string | null;
  /** How long to wait for another holder before giving up. */
  timeoutSeconds: number;
  /** How long a lock outlives a holder that stopped renewing it (a killed apply). */
  ttlSeconds: number;
  /** Told once when the lock is held by someone else, and when a stale lock is broken. */
  onWait?: (message: string) => void;
  /** Poll interval while waiting; default 2 s. */
  pollMs?: number;
}

/** What the variable holds: who has the lock, and how long it lives without a heartbeat. */
interface LockValue {
  holder: string;
  project: string;
  environment: string | null;
  started: string;
  ttl_seconds: number;
}

interface LockVariable {
  id: string;
  name: string;
  value: unknown;
  updated: string;
}

/** The lock could not be taken in time, or was lost while held. */
export class LockError extends Error {}

const LOCK_TAG = "deploy.ts-lock";

/**
 * The variable's name: readable in the UI, and unique per project and environment. It uses only
 * lowercase letters, digits and `_`, what every Prefect 3 release accepts (`-` only from 3.4),
 * so a digest keeps distinct projects apart whatever their names.
 */
export async function lockName(project: string, environment: string | null): Promise<string> {
  const readable = (text: string) =>
    text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 60);
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(JSON.stringify([project, environment])),
    ),
  );
  const hex = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `deploy_ts_lock__${readable(project) || "project"}__${
    readable(environment ?? "default")
  }__${hex}`;
}

export class DeployLock {
  #lost: string | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<void> = Promise.resolve();
  #released = false;

  private constructor(
    private client: PrefectClient,
    readonly id: string,
    readonly name: string,
    private value: LockValue,
  ) {}

  /** Why the lock was lost while held (its heartbeat failed), if it was. */
  get lost(): string | undefined {
    return this.#lost;
  }

  /**
   * Takes the lock, waiting up to `timeoutSeconds` while another apply holds it. A lock whose
   * holder stopped renewing it for longer than its TTL is broken (deleted by ID) and taken.
   */
  static async acquire(client: PrefectClient, options: LockOptions): Promise<DeployLock> {
    const name = await lockName(options.project, options.environment);
    const value: LockValue = {
      holder: `deploy.ts pid ${Deno.pid} (${crypto.randomUUID().slice(0, 8)})`,
      project: options.project,
      environment: options.environment,
      started: new Date().toISOString(),
      ttl_seconds: options.ttlSeconds,
    };
    const deadline = Date.now() + options.timeoutSeconds * 1000;
    const scope = `project "${options.project}", environment "${options.environment ?? "default"}"`;
    let told = false;
    while (true) {
      const created = await client.request<LockVariable>(
        "POST",
        "/variables/",
        { name, value: JSON.stringify(value), tags: [LOCK_TAG] },
        { accept: [409], resendAfterDrop: false },
      );
      if (created.status !== 409) {
        const lock = new DeployLock(client, created.data.id, name, value);
        lock.#startHeartbeat();
        return lock;
      }
      const current = await client.request<LockVariable>(
        "GET",
        `/variables/name/${name}`,
        undefined,
        { accept: [404] },
      );
      if (current.status === 404) continue; // released between our create and our read
      const held = parseLockValue(current.data.value);
      const ttl = held?.ttl_seconds ?? options.ttlSeconds;
      const now = current.serverTime ?? Date.now();
      const silentFor = (now - Date.parse(current.data.updated)) / 1000;
      if (silentFor > ttl) {
        options.onWait?.(
          `Breaking the lock of ${scope}: ${held?.holder ?? "its holder"} has not renewed it for ${
            Math.round(silentFor)
          } s (its limit is ${ttl} s).`,
        );
        // By ID: if another waiter broke it first and took a new lock, this deletes nothing.
        await client.request("DELETE", `/variables/${current.data.id}`, undefined, {
          accept: [404],
        });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new LockError(
          `Another apply of ${scope} still holds the lock after ${options.timeoutSeconds} s ` +
            `(${held?.holder ?? "unknown holder"}, since ${
              held?.started ?? current.data.updated
            }; Prefect variable "${name}"). Try again later, or raise --lock-timeout.`,
        );
      }
      if (!told) {
        options.onWait?.(
          `Waiting up to ${options.timeoutSeconds} s for the lock of ${scope}, held by ${
            held?.holder ?? "another apply"
          } since ${held?.started ?? current.data.updated}.`,
        );
        told = true;
      }
      const pause = (options.pollMs ?? 2000) * (0.75 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, deadline - Date.now())));
    }
  }

  #startHeartbeat() {
    const every = Math.max(250, (this.value.ttl_seconds * 1000) / 4);
    this.#heartbeat = setInterval(() => {
      this.#beating = this.#beating.then(() => this.#renew());
    }, every);
  }

  async #renew() {
    if (this.#released || this.#lost) return;
    try {
      const { status } = await this.client.request(
        "PATCH",
        `/variables/${this.id}`,
        { value: JSON.stringify(this.value) },
        { accept: [404] },
      );
      if (status === 404) this.#lost = "another apply broke it as stale";
    } catch (error) {
      // One failed heartbeat is not fatal: the TTL allows three more.
      if (!(error instanceof PrefectApiError)) throw error;
    }
  }

  /** Deletes the lock (by ID: a lock someone else took meanwhile is left alone). */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearInterval(this.#heartbeat);
    await this.#beating;
    await this.client.request("DELETE", `/variables/${this.id}`, undefined, { accept: [404] });
  }
}

function parseLockValue(value: unknown): LockValue | undefined {
  try {
    const parsed = typeof value === "string" ? JSON.parse(value) : value;
    return parsed && typeof parsed === "object" ? parsed as LockValue : undefined;
  } catch {
    return undefined;
  }
}
