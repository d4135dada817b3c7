/**
 * Release ordering and the capability table (the table itself is checked against each real
 * server's OpenAPI schema in sync_test.ts).
 */
import { assertEquals } from "./assert.ts";
import { capabilitiesOf, compareVersions } from "../lib/prefect_client.ts";

Deno.test("capabilities: releases order by their numbers, suffixes aside", () => {
  const sorted = ["3.10.0", "3.0.11", "3.2.0rc1", "3.1.15.dev3", "3.9.1", "3.0.3"]
    .sort(compareVersions);
  assertEquals(sorted, ["3.0.3", "3.0.11", "3.1.15.dev3", "3.2.0rc1", "3.9.1", "3.10.0"]);
  assertEquals(compareVersions("3.2", "3.2.0"), 0);
});

Deno.test("capabilities: what each release accepts", () => {
  const none = {
    scheduleSlugs: false,
    patchesStepsAndSchema: false,
    concurrencyGracePeriod: false,
  };
  assertEquals(capabilitiesOf("3.0.11"), none);
  assertEquals(capabilitiesOf("3.1.15"), none);
  const v32 = { scheduleSlugs: true, patchesStepsAndSchema: true, concurrencyGracePeriod: false };
  assertEquals(capabilitiesOf("3.2.0"), v32);
  assertEquals(capabilitiesOf("3.6.5"), v32);
  const all = { scheduleSlugs: true, patchesStepsAndSchema: true, concurrencyGracePeriod: true };
  assertEquals(capabilitiesOf("3.6.6"), all);
  assertEquals(capabilitiesOf("3.10.2"), all);
  // Prefect Cloud does not say its version; it runs the newest API.
  assertEquals(capabilitiesOf(undefined), all);
});
