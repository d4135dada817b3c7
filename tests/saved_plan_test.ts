/** Saved plans as data: canonical digests, parsing, and what counts as "moved". */
import { assert, assertEquals } from "./assert.ts";
import {
  canonicalJson,
  digest,
  looksLikeSavedPlan,
  parseSavedPlan,
  PLAN_FORMAT,
  PLAN_FORMAT_VERSION,
  planDifferences,
  PlanFileError,
  type SavedPlan,
} from "../lib/saved_plan.ts";

function plan(overrides: Partial<SavedPlan> = {}): SavedPlan {
  return {
    format: PLAN_FORMAT,
    format_version: PLAN_FORMAT_VERSION,
    deploy_version: "1.0.0",
    created: "2026-12-01T00:00:00Z",
    project: "alpha",
    environment: null,
    api_url: "http://127.0.0.1:4200/api",
    invocation: {
      paths: ["prefect"],
      environment: null,
      flows: [],
      names: [],
      prune: false,
      adopt: false,
      strict: false,
      codeChecks: true,
      directory: "/srv/app",
    },
    manifests: { "prefect/a.yaml": "aaa", "prefect/b.yaml": "bbb" },
    blocks: ["secret/owner 1 2026-01-01"],
    deployments: [
      { flow: "etl", name: "one", action: "update", server: "s1", operation: "o1" },
      { flow: "etl", name: "two", action: "create", server: null, operation: "o2" },
    ],
    plan: {},
    ...overrides,
  };
}

Deno.test("saved plan: canonical JSON ignores key order, digests are stable", async () => {
  assertEquals(
    canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } }),
    canonicalJson({
      a: { c: null, d: [2, { x: 2, y: 1 }] },
      b: 1,
    }),
  );
  assertEquals(await digest("x"), await digest("x"));
  assert(await digest("x") !== await digest("y"));
  assertEquals((await digest("")).length, 64);
});

Deno.test("saved plan: a plan made from the same inputs has moved nowhere", () => {
  assertEquals(planDifferences(plan(), plan({ created: "later", plan: { other: true } })), []);
});

Deno.test("saved plan: every input that moved is named", () => {
  const cases: [Partial<SavedPlan>, string][] = [
    [
      { api_url: "http://other/api" },
      "it was made against http://127.0.0.1:4200/api, not http://other/api",
    ],
    [
      { invocation: { ...plan().invocation, directory: "/tmp/x" } },
      "it was made in /srv/app, and apply runs in /tmp/x",
    ],
    [
      { manifests: { "prefect/a.yaml": "changed", "prefect/b.yaml": "bbb" } },
      "prefect/a.yaml changed",
    ],
    [{ manifests: { "prefect/a.yaml": "aaa" } }, "prefect/b.yaml is gone"],
    [
      { manifests: { ...plan().manifests, "prefect/c.yaml": "ccc" } },
      "prefect/c.yaml is new",
    ],
    [{ blocks: ["secret/owner 1 2026-02-02"] }, "block secret/owner changed on the server"],
    [
      { deployments: [{ ...plan().deployments[0], server: "s2" }, plan().deployments[1]] },
      "etl/one changed on the server",
    ],
    [
      { deployments: [{ ...plan().deployments[0], operation: "o9" }, plan().deployments[1]] },
      "what the plan would do to etl/one is different now",
    ],
    [
      { deployments: [{ ...plan().deployments[0], action: "adopt" }, plan().deployments[1]] },
      "what the plan would do to etl/one is different now",
    ],
    [{ deployments: [plan().deployments[0]] }, "etl/two is no longer in the plan"],
    [
      {
        deployments: [
          ...plan().deployments,
          { flow: "etl", name: "three", action: "delete", server: "s3", operation: "o3" },
        ],
      },
      "etl/three is new in the plan",
    ],
  ];
  for (const [now, expected] of cases) {
    assertEquals(planDifferences(plan(), plan(now)), [expected], expected);
  }
});

Deno.test("saved plan: only a plan file of this version is read", () => {
  const text = JSON.stringify(plan());
  assert(looksLikeSavedPlan(text));
  assert(!looksLikeSavedPlan("deployments: []\n"));
  assertEquals(parseSavedPlan(text, "p.plan", "1.0.0").project, "alpha");
  const refusals: [string, string][] = [
    ["{not json", '"p.plan" is not a saved plan: it is not JSON.'],
    ['{"format": "other"}', '"p.plan" is not a saved plan (made by "deploy plan --out").'],
    [
      JSON.stringify(plan({ deploy_version: "0.9.0" })),
      '"p.plan" was made by deploy 0.9.0; this is deploy 1.0.0. Make the plan again with this version.',
    ],
    [JSON.stringify({ ...plan(), deployments: "x" }), '"p.plan" is not a complete saved plan.'],
  ];
  for (const [input, message] of refusals) {
    try {
      parseSavedPlan(input, "p.plan", "1.0.0");
      throw new Error(`accepted ${input}`);
    } catch (error) {
      assert(error instanceof PlanFileError, String(error));
      assertEquals(error.message, message);
    }
  }
});
