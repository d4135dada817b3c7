/** The server-side lock against a real Prefect server: exclusion, waiting, expiry, loss. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { api } from "./helpers.ts";
import { startPrefectServer } from "./prefect_server.ts";
import { DeployLock, LockError, lockName } from "../lib/lock.ts";
import { PrefectClient } from "../lib/prefect_client.ts";

Deno.test("lock names are valid Prefect variable names, one per project and environment", async () => {
  const names = await Promise.all([
    lockName("alpha", null),
    lockName("alpha", "dev"),
    lockName("Alpha", null),
    lockName("team/α pipelines", "prod"),
    lockName("alpha--dev", null),
  ]);
  assertEquals(new Set(names).size, names.length);
  // Prefect 3.0 to 3.3 accept no `-` in variable names.
  for (const name of names) assertMatch(name, /^[a-z0-9_]{1,255}$/);
  assertEquals(names[1], await lockName("alpha", "dev"));
  assertMatch(names[3], /^deploy_ts_lock__team_pipelines__prod__[0-9a-f]{12}$/);
});

Deno.test("the lock against a real server", async (t) => {
  await using server = await startPrefectServer();
  const call = api(server.apiUrl);
  const client = () => new PrefectClient({ apiUrl: server.apiUrl, retryBaseMs: 100 });
  const options = { project: "p", environment: null, ttlSeconds: 60, timeoutSeconds: 0 };
  const locks = () => call<{ id: string; name: string }[]>("POST", "/variables/filter", {});

  await t.step("held once: a second holder waits, then gives up with who holds it", async () => {
    const first = await DeployLock.acquire(client(), options);
    assertEquals((await locks()).map((v) => v.name), [await lockName("p", null)]);
    const messages: string[] = [];
    const started = Date.now();
    try {
      await DeployLock.acquire(client(), {
        ...options,
        timeoutSeconds: 1,
        pollMs: 200,
        onWait: (m) => messages.push(m),
      });
      throw new Error("acquired a held lock");
    } catch (error) {
      assert(error instanceof LockError, String(error));
      assertMatch(error.message, /still holds the lock after 1 s \(deploy\.ts pid \d+/);
    }
    assert(Date.now() - started >= 1000, "it waited");
    assertEquals(messages.length, 1);
    assertMatch(messages[0], /^Waiting up to 1 s for the lock of project "p"/);
    const other = await DeployLock.acquire(client(), { ...options, environment: "dev" });
    await other.release();
    await first.release();
    assertEquals(await locks(), []);
  });

  await t.step("a waiter gets it as soon as the holder releases", async () => {
    const first = await DeployLock.acquire(client(), options);
    const second = DeployLock.acquire(client(), { ...options, timeoutSeconds: 30, pollMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await first.release();
    const lock = await second;
    assertEquals((await locks()).map((v) => v.id), [lock.id]);
    await lock.release();
  });

  await t.step("a holder that stops renewing loses it after its TTL; it knows", async () => {
    // A lock from a holder that died: its value says 1 s, and nobody renews it.
    await call("POST", "/variables/", {
      name: await lockName("p", null),
      value: JSON.stringify({ holder: "a dead apply", ttl_seconds: 1 }),
    });
    const messages: string[] = [];
    const lock = await DeployLock.acquire(client(), {
      ...options,
      timeoutSeconds: 30,
      pollMs: 200,
      onWait: (m) => messages.push(m),
    });
    assertMatch(
      messages.at(-1)!,
      /^Breaking the lock of project "p", environment "default": a dead apply has not renewed it for \d+ s \(its limit is 1 s\)\.$/,
    );
    assertEquals(lock.lost, undefined);
    await lock.release();
  });

  await t.step("a live holder's heartbeat keeps it; a broken lock is noticed", async () => {
    const lock = await DeployLock.acquire(client(), { ...options, ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const waiter = DeployLock.acquire(client(), { ...options, timeoutSeconds: 1, pollMs: 200 });
    let stolen = false;
    await waiter.then((l) => {
      stolen = true;
      return l.release();
    }, () => {});
    assert(!stolen, "a renewed lock is not broken after more than its TTL");
    await call("DELETE", `/variables/${lock.id}`);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assertEquals(lock.lost, "another apply broke it as stale");
    await lock.release();
  });
});
