/**
 * The harness' version list and pin files agree: every release has a file pinning every package
 * exactly (`name==version`), prefect at that release, and each recorded constraint holds for the
 * pins; DEPLOY_TEST_PREFECT_VERSION resolves releases, minors and aliases, and refuses others.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  pinLines,
  PINNED_PREFECT_VERSION,
  pinsFile,
  PREFECT_VERSIONS,
  resolveVersion,
} from "./prefect_server.ts";
import { compareVersions } from "../lib/prefect_client.ts";

const PINS_DIR = new URL("./prefect-pins/", import.meta.url).pathname;

/** Whether `version` satisfies one `<`, `<=`, `==`, `>=` or `>` bound, or a bare name. */
function satisfies(version: string | undefined, bound: string): boolean {
  if (version === undefined) return false;
  const match = bound.match(/^(<=|>=|==|<|>)(.+)$/);
  if (!match) return bound === "";
  const order = compareVersions(version, match[2]);
  return { "<": order < 0, "<=": order <= 0, "==": order === 0, ">=": order >= 0, ">": order > 0 }[
    match[1]
  ]!;
}

const normalise = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

Deno.test("pins: one file per release, every package pinned, constraints kept", async () => {
  const files = [...Deno.readDirSync(PINS_DIR)].map((e) => e.name).sort();
  assertEquals(files, [...PREFECT_VERSIONS].map((v) => `${v}.txt`).sort());
  assert(PREFECT_VERSIONS.includes(PINNED_PREFECT_VERSION as never), "the pinned one is listed");
  assertEquals(
    [...PREFECT_VERSIONS],
    [...PREFECT_VERSIONS].sort(compareVersions),
    "oldest first",
  );
  for (const version of PREFECT_VERSIONS) {
    const text = await Deno.readTextFile(pinsFile(version));
    const pins = new Map<string, string>();
    for (const line of pinLines(text)) {
      assertMatch(line, /^[A-Za-z0-9][A-Za-z0-9._-]*==[\w.+!-]+$/, `${version}: ${line}`);
      const [name, pinned] = line.split("==");
      assert(!pins.has(normalise(name)), `${version}: ${name} pinned twice`);
      pins.set(normalise(name), pinned);
    }
    assertEquals(pins.get("prefect"), version);
    assert(pins.has("asyncpg"), `${version}: PostgreSQL needs asyncpg`);
    for (const [, spec] of text.matchAll(/^#\s*requires:\s*(\S+)/gm)) {
      const [, name, bounds] = spec.match(/^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?(.*)$/)!;
      for (const bound of bounds ? bounds.split(",") : [""]) {
        assert(
          satisfies(pins.get(normalise(name)), bound),
          `${version}: ${name} ${pins.get(normalise(name))} does not satisfy "${spec}"`,
        );
      }
    }
  }
});

Deno.test("pins: DEPLOY_TEST_PREFECT_VERSION names a release, a minor or an alias", () => {
  assertEquals(resolveVersion("3.1"), "3.1.15");
  assertEquals(resolveVersion("3.9.1"), "3.9.1");
  assertEquals(resolveVersion("oldest"), PREFECT_VERSIONS[0]);
  assertEquals(resolveVersion("newest"), PREFECT_VERSIONS.at(-1));
  assertEquals(resolveVersion("pinned"), PINNED_PREFECT_VERSION);
  let message = "";
  try {
    resolveVersion("2.20");
  } catch (error) {
    message = (error as Error).message;
  }
  assertMatch(message, /^DEPLOY_TEST_PREFECT_VERSION "2\.20" is not a release the harness runs/);
});
