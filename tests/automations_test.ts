/**
 * lib/automations.ts offline: the automation each trigger becomes, differentially against
 * Prefect's own client code (the harness' Prefect, tests/prefect_automations.py); the checks
 * beside what Prefect rejects or silently drops; the plan against automations shaped as the
 * server returns them (IDs added, sets in any order, durations as floats); automations read back
 * into the triggers they come from (deploy export).
 */
import { assert, assertEquals } from "./assert.ts";
import { ensurePrefect } from "./prefect_server.ts";
import {
  type Automations,
  checkTriggers,
  desiredAutomations,
  manifestTrigger,
  metricTriggerPaths,
  planAutomations,
  pruneAutomations,
  type ServerAutomation,
  triggerKind,
  withNamedAutomations,
} from "../lib/automations.ts";
import { PrefectClient } from "../lib/prefect_client.ts";
import { intervalSeconds, schemaProblems } from "../deploy.ts";

const REFERENCE_SCRIPT = new URL("./prefect_automations.py", import.meta.url).pathname;
const DEPLOYMENT_ID = "e7ced414-8f3b-45a5-bbbe-5ae61e65e63a";
const MARKS = ["managed-by:deploy.ts/alpha"];
type Json = Record<string, unknown>;

const METRIC = { name: "duration", threshold: 5, operator: "<=", range: 600, firing_for: "PT10M" };

/** Triggers both Prefect and deploy.ts accept: the automations must be the same. */
const ACCEPTED: Json[] = [
  { expect: ["a.b"], match: { "prefect.resource.id": "x.*" } },
  {
    name: "every-field",
    enabled: false,
    description: "All of an event trigger",
    posture: "Reactive",
    expect: ["b", "a", "a"],
    after: ["z"],
    for_each: ["prefect.resource.id"],
    threshold: 3,
    within: "PT5M",
    match: { "prefect.resource.id": ["x.*", "y.*"] },
    match_related: [{ "prefect.resource.role": "flow" }, { "prefect.resource.name": "n" }],
    parameters: { x: "{{ event.id }}", y: 1 },
    job_variables: { env: { A: "1" } },
    schedule_after: "01:00:00",
  },
  { posture: "Proactive", expect: ["a"] },
  { posture: "Proactive", expect: ["a"], within: 300, threshold: 2 },
  { type: "metric", metric: METRIC },
  { posture: "Metric", metric: { name: "lateness", threshold: 1, operator: ">" } },
  {
    type: "compound",
    require: "any",
    within: 60,
    triggers: [
      { expect: ["a"] },
      { type: "sequence", triggers: [{ expect: ["b"] }, { expect: ["c"], within: 30 }] },
    ],
  },
  { triggers: [{ expect: ["a"] }, { expect: ["b"] }], require: 2, schedule_after: 30 },
  { triggers: [{ expect: ["a"] }, { posture: "Metric", metric: METRIC }] },
  { within: 0, expect: [], parameters: {} },
];

/** Triggers Prefect rejects: deploy.ts must report them before anything is written. */
const REJECTED: Json[] = [
  { type: "compound", triggers: [{ expect: ["a"] }] },
  { type: "compound", require: 3, triggers: [{ expect: ["a"] }] },
  { posture: "Proactive", within: 5, expect: ["a"] },
  // Prefect's own validator compares the text with a timedelta and fails.
  { posture: "Proactive", within: "PT5M", expect: ["a"] },
  { type: "metric", metric: { ...METRIC, range: 100 } },
  { type: "metric" },
  { type: "event", posture: "Metric" },
  { within: "PT1X" },
  { schedule_after: -1 },
  { expect: "a" },
];

/** Triggers Prefect accepts with a part silently dropped: deploy.ts reports the part. */
const DROPPED: Json[] = [
  { expect: ["a"], require: 2 },
  { type: "compound", require: "all", triggers: [{ expect: ["a"], enabled: false }] },
  { expec: ["a"] },
  { type: "metric", metric: METRIC, expect: ["a"] },
  { triggers: [{ expect: ["a"] }], threshold: 2 },
];

/** Sets (after, expect, for_each) sorted wherever they are, so Python's set order never counts. */
function sortSets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortSets);
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map((
      [k, v],
    ) => [
      k,
      ["after", "expect", "for_each"].includes(k) ? [...v as string[]].sort() : sortSets(v),
    ]),
  );
}

async function prefectAutomations(triggers: Json[]): Promise<(Json[] | { error: string })[]> {
  const bin = await ensurePrefect();
  const child = new Deno.Command(`${bin}/python`, {
    args: [REFERENCE_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({
    deployment_id: DEPLOYMENT_ID,
    cases: triggers.map((t) => ({ deployment: "nightly", triggers: [t] })),
  })));
  await writer.close();
  const output = await child.output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function ourProblems(spec: Json): string[] {
  const schema = schemaProblems({
    deployments: [{ name: "nightly", entrypoint: "flows/f.py:f", triggers: [spec] }],
  });
  const meaning = schema.length
    ? []
    : checkTriggers("nightly", [spec], ["triggers"], intervalSeconds);
  return [...schema, ...meaning].map((p) => `${p.path.join(".")}: ${p.message}`);
}

Deno.test("triggers become the automations Prefect's own client makes", async () => {
  const reference = await prefectAutomations(ACCEPTED);
  ACCEPTED.forEach((spec, i) => {
    assertEquals(ourProblems(spec), [], `trigger ${i} is valid`);
    const expected = reference[i];
    assert(Array.isArray(expected), `Prefect rejected trigger ${i}: ${JSON.stringify(expected)}`);
    const [ours] = desiredAutomations("nightly", [spec], intervalSeconds);
    const sent = planAutomations([ours], state([]), null)[0].body!;
    const body = {
      ...sent,
      actions: (sent.actions as Json[]).map((a) => ({ ...a, deployment_id: DEPLOYMENT_ID })),
      owner_resource: `prefect.deployment.${DEPLOYMENT_ID}`,
    };
    // The one difference by design: the project's mark, where Prefect sends no tags.
    assertEquals(sortSets(body), sortSets({ ...expected[0], tags: MARKS }), `trigger ${i}`);
  });
});

Deno.test("what Prefect rejects or silently drops in a trigger is reported", async () => {
  const reference = await prefectAutomations([...REJECTED, ...DROPPED]);
  REJECTED.forEach((spec, i) => {
    assert("error" in reference[i], `Prefect accepted rejected trigger ${i}`);
    assert(ourProblems(spec).length > 0, `trigger ${JSON.stringify(spec)} passed our checks`);
  });
  DROPPED.forEach((spec, i) => {
    assert(Array.isArray(reference[REJECTED.length + i]), `Prefect rejected dropped trigger ${i}`);
    assert(ourProblems(spec).length > 0, `trigger ${JSON.stringify(spec)} passed our checks`);
  });
});

Deno.test("checks: located, explained, every problem at once", () => {
  const problems = checkTriggers(
    "nightly",
    [
      { expect: ["a"], require: 2 },
      { name: "nightly__automation_1", within: "soon" },
      {
        type: "compound",
        require: 3,
        triggers: [{ expect: ["a"] }, { posture: "Proactive", within: 5 }],
      },
      { enabled: "maybe" },
    ],
    ["deployments", 0, "triggers"],
    intervalSeconds,
  );
  assertEquals(problems.map((p) => [p.path.join("."), p.code]), [
    ["deployments.0.triggers.0.require", "trigger-key"],
    ["deployments.0.triggers.1.within", "invalid-duration"],
    ["deployments.0.triggers.1.name", "duplicate-trigger-name"],
    ["deployments.0.triggers.2.require", "invalid-value"],
    ["deployments.0.triggers.2.triggers.1.within", "invalid-duration"],
    ["deployments.0.triggers.3.enabled", "template-type"],
  ]);
  assertEquals(
    problems[0].message,
    '"require" belongs to compound triggers; this is an event trigger (it has no `type`), ' +
      "so Prefect would ignore it.",
  );
  // Values still templated are checked after plan resolves them.
  assertEquals(
    checkTriggers("d", [{ within: "{{ $W }}", enabled: "{{ $E }}" }], [], intervalSeconds),
    [],
  );
});

Deno.test("trigger kinds follow Prefect's two discriminators", () => {
  const both = { posture: "Metric", triggers: [] };
  assertEquals(triggerKind(both, true), "metric");
  assertEquals(triggerKind(both, false), "sequence");
  assertEquals(triggerKind({ triggers: [], require: "all" }, true), "compound");
  assertEquals(triggerKind({ expect: ["a"] }, true), "event");
  assertEquals(
    metricTriggerPaths([{ expect: ["a"] }, {
      type: "compound",
      require: 1,
      triggers: [{ type: "metric", metric: METRIC }],
    }], ["t"]),
    [["t", 1, "triggers", 0]],
  );
});

/** An automation as the server returns what was sent: IDs added, sets reversed, floats. */
function asServerReturns(body: Json, id: string, deploymentId = DEPLOYMENT_ID): ServerAutomation {
  const trigger = body.trigger as Json;
  return {
    ...structuredClone(body),
    id,
    created: "2026-12-01T00:00:00Z",
    trigger: {
      ...trigger,
      id: crypto.randomUUID(),
      expect: [...(trigger.expect as string[] ?? [])].reverse(),
    },
    actions: (body.actions as Json[]).map((a) => ({ ...a, deployment_id: deploymentId })),
  } as unknown as ServerAutomation;
}

function state(list: ServerAutomation[]): Automations {
  return { supported: true, marks: MARKS, list };
}

Deno.test("plan: unchanged is a no-op, a change is one update that keeps the ID", () => {
  const triggers = [{ expect: ["b", "a"], parameters: { x: 1 } }, {
    name: "second",
    expect: ["c"],
  }];
  const desired = desiredAutomations("nightly", triggers, intervalSeconds);
  const created = planAutomations(desired, state([]), null);
  assertEquals(created.map((o) => [o.action, o.name]), [
    ["create", "nightly__automation_1"],
    ["create", "second"],
  ]);
  const server = created.map((o, i) => asServerReturns(o.body!, `id-${i}`));
  assertEquals(
    planAutomations(desired, state(server), DEPLOYMENT_ID).map((o) => o.action),
    ["noop", "noop"],
  );

  const edited = desiredAutomations(
    "nightly",
    [{ expect: ["b", "a", "d"], parameters: { x: 1 } }, triggers[1]],
    intervalSeconds,
  );
  const [update, same] = planAutomations(edited, state(server), DEPLOYMENT_ID);
  assertEquals(update.action, "update");
  assertEquals(update.id, "id-0");
  assertEquals(update.changes, [{ field: "expect", before: ["a", "b"], after: ["a", "b", "d"] }]);
  assertEquals(same.action, "noop");

  // A trigger removed from the manifest: its marked automation is deleted.
  const [kept, removed] = planAutomations([edited[1]], state(server), DEPLOYMENT_ID);
  assertEquals([kept.action, removed.action, removed.id], ["noop", "delete", "id-0"]);
});

Deno.test("plan: enabled left out stays as the server has it; stated, it is a PATCH", () => {
  const [unstated] = desiredAutomations("nightly", [{ expect: ["a"] }], intervalSeconds);
  const switchedOff = asServerReturns(
    { ...planAutomations([unstated], state([]), null)[0].body!, enabled: false },
    "id-0",
  );
  assertEquals(planAutomations([unstated], state([switchedOff]), DEPLOYMENT_ID)[0].action, "noop");
  const [stated] = desiredAutomations(
    "nightly",
    [{ expect: ["a"], enabled: true }],
    intervalSeconds,
  );
  const [op] = planAutomations([stated], state([switchedOff]), DEPLOYMENT_ID);
  assertEquals([op.action, op.enabledOnly, op.changes.map((c) => c.field)], [
    "update",
    true,
    ["enabled"],
  ]);
});

Deno.test("plan: prefect deploy's automations are adopted, other automations left alone", () => {
  const desired = desiredAutomations("nightly", [{ expect: ["a"] }], intervalSeconds);
  const byPrefect = asServerReturns(
    { ...planAutomations(desired, state([]), null)[0].body!, tags: [] },
    "made-by-prefect",
  );
  const byHand = { ...byPrefect, id: "made-in-the-ui", name: "page me" };
  const otherDeployment = asServerReturns(
    planAutomations(desired, state([]), null)[0].body!,
    "of-another-deployment",
    "0bd4a0b6-0000-4000-8000-000000000000",
  );
  const ops = planAutomations(desired, state([byHand, otherDeployment, byPrefect]), DEPLOYMENT_ID);
  assertEquals(ops.map((o) => [o.action, o.id]), [["update", "made-by-prefect"]]);
  assertEquals(ops[0].changes, [{ field: "tags", before: [], after: MARKS }]);
  assert(ops[0].effects[0].startsWith("Adopted"), ops[0].effects[0]);

  // Removed from the manifest, an unmarked automation stays: nothing proves it is ours.
  assertEquals(planAutomations([], state([byHand, byPrefect]), DEPLOYMENT_ID), []);
  assertEquals(
    pruneAutomations(state([byHand, otherDeployment, { ...byPrefect, tags: MARKS }]), DEPLOYMENT_ID)
      .map((o) => [o.action, o.id]),
    [["delete", "made-by-prefect"]],
  );
  assertEquals(planAutomations(desired, { ...state([]), supported: false }, DEPLOYMENT_ID), []);
});

Deno.test("plan: actions edited in the UI are put back, stateful triggers say what a PUT costs", () => {
  const [want] = desiredAutomations(
    "nightly",
    [{ expect: ["a"], threshold: 3, within: 60 }],
    intervalSeconds,
  );
  const body = planAutomations([want], state([]), null)[0].body!;
  const edited = asServerReturns(body, "id-0");
  edited.actions = [...edited.actions, { type: "do-nothing" }];
  const [op] = planAutomations([want], state([edited]), DEPLOYMENT_ID);
  assertEquals(op.changes.map((c) => c.field), ["actions"]);
  assert(op.effects.some((e) => e.includes("start over")), op.effects.join(" "));
});

Deno.test("plan: a server before Prefect 3.5 (no automation tags, no schedule_after) is matched by name", () => {
  const [want] = desiredAutomations("nightly", [{ expect: ["a"] }], intervalSeconds);
  const old = { supported: true, marks: [], list: [] };
  const [create] = planAutomations([want], old, null);
  assert(!("tags" in create.body!), "no tags sent to a server that refuses them");
  const body = create.body!;
  const action = (body.actions as Json[])[0];
  const { schedule_after: _, ...olderAction } = action;
  const returned = { ...asServerReturns({ ...body, actions: [olderAction] }, "id-0") };
  delete (returned as Partial<ServerAutomation>).tags;
  assertEquals(planAutomations([want], { ...old, list: [returned] }, DEPLOYMENT_ID), [{
    action: "noop",
    name: "nightly__automation_1",
    id: "id-0",
    changes: [],
    effects: [],
  }]);
});

Deno.test("read: automations by name only for triggers no marked one of their deployment answers", async () => {
  const asked: unknown[] = [];
  let answer: ServerAutomation[] = [];
  await using server = Deno.serve({ port: 0, onListen() {} }, async (request) => {
    asked.push(await request.json());
    return Response.json(answer);
  });
  const client = new PrefectClient({ apiUrl: `http://127.0.0.1:${server.addr.port}/api` });
  const desired = desiredAutomations("nightly", [{ expect: ["a"] }], intervalSeconds);
  const body = planAutomations(desired, state([]), null)[0].body!;
  const ours = asServerReturns(body, "ours");
  const elsewhere = asServerReturns(body, "elsewhere", "0bd4a0b6-0000-4000-8000-000000000000");
  const trigger = { deploymentId: DEPLOYMENT_ID, name: "nightly__automation_1" };

  // A no-op: the marked automation of that deployment answers the trigger.
  assertEquals(await withNamedAutomations(client, state([ours]), [trigger]), state([ours]));
  assertEquals(asked, []);

  // Its namesake runs another deployment: an unmarked one of this deployment may be adopted.
  const byPrefect = { ...asServerReturns(body, "by-prefect"), tags: [] };
  answer = [elsewhere, byPrefect];
  const read = await withNamedAutomations(client, state([elsewhere]), [trigger]);
  assertEquals(asked, [{
    automations: { name: { any_: ["nightly__automation_1"] } },
    limit: 200,
    offset: 0,
  }]);
  assertEquals(read.list.map((a) => a.id), ["elsewhere", "by-prefect"], "each once");
  assertEquals(planAutomations(desired, read, DEPLOYMENT_ID).map((o) => [o.action, o.id]), [
    ["update", "by-prefect"],
  ]);

  // No tags on the server's automations (before 3.5): every trigger is read by name.
  asked.length = 0;
  answer = [ours];
  const old = { supported: true, marks: [], list: [] };
  assertEquals((await withNamedAutomations(client, old, [trigger])).list, [ours]);
  assertEquals(asked.length, 1);

  // No automations API: nothing to read.
  asked.length = 0;
  const none = { supported: false, marks: [], list: [] };
  assertEquals(await withNamedAutomations(client, none, [trigger]), none);
  assertEquals(asked, []);
  client.close();
});

const isMark = (tag: string) => tag.startsWith("managed-by:deploy.ts/");

Deno.test("export: each automation Prefect's client makes reads back as a trigger that plans as a no-op", async () => {
  const reference = await prefectAutomations(ACCEPTED);
  ACCEPTED.forEach((spec, i) => {
    const made = reference[i] as Json[];
    const server = asServerReturns({ ...made[0], tags: [] }, `id-${i}`);
    const found = manifestTrigger(server, DEPLOYMENT_ID, "nightly", 0, isMark);
    assert("trigger" in found, `trigger ${i}: ${JSON.stringify(found)}`);
    assertEquals(found.enabled, spec.enabled ?? true, `trigger ${i}`);
    assert(!("enabled" in found.trigger), `trigger ${i}: enabled stays the server's`);
    // Read back, the trigger plans as taking the automation over, and nothing else.
    const desired = desiredAutomations("nightly", [found.trigger], intervalSeconds);
    const [op] = planAutomations(desired, state([server]), DEPLOYMENT_ID);
    assertEquals([op.action, op.id, op.changes], [
      "update",
      `id-${i}`,
      [{ field: "tags", before: [], after: MARKS }],
    ], `trigger ${i}: ${JSON.stringify(found.trigger)}`);
    assertEquals(ourProblems(found.trigger), [], `trigger ${i} read back is valid`);
  });
  // Defaults are left out: what is left is what the manifest said beyond them.
  const read = (i: number) =>
    (manifestTrigger(
      asServerReturns((reference[i] as Json[])[0], "x"),
      DEPLOYMENT_ID,
      "nightly",
      0,
      isMark,
    ) as { trigger: Json }).trigger;
  assertEquals(read(ACCEPTED.length - 1), {});
  assertEquals(read(0), { match: { "prefect.resource.id": "x.*" }, expect: ["a.b"] });
  assertEquals(read(2), { posture: "Proactive", expect: ["a"] });
  assertEquals(read(4), { type: "metric", metric: { ...METRIC, firing_for: 600 } });
  assertEquals(read(7), {
    type: "compound",
    require: 2,
    triggers: [{ expect: ["a"] }, { expect: ["b"] }],
    schedule_after: 30,
  });
  assertEquals(Object.keys(read(1)), [
    "name",
    "description",
    "match",
    "match_related",
    "after",
    "expect",
    "for_each",
    "threshold",
    "within",
    "parameters",
    "job_variables",
    "schedule_after",
  ]);
});

Deno.test("export: a positional name is left out only at its own position", () => {
  const [body] = planAutomations(
    desiredAutomations("nightly", [{ expect: ["a"] }, { expect: ["b"] }], intervalSeconds),
    state([]),
    null,
  ).map((o) => o.body!).slice(1);
  const second = asServerReturns(body, "id-1");
  assertEquals(second.name, "nightly__automation_2");
  const at = (index: number) =>
    (manifestTrigger(second, DEPLOYMENT_ID, "nightly", index, isMark) as { trigger: Json }).trigger;
  assertEquals(at(1), { expect: ["b"] });
  assertEquals(at(0), { name: "nightly__automation_2", expect: ["b"] });
});

Deno.test("export: automations that do more than run their deployment are no triggers", () => {
  const [want] = desiredAutomations("nightly", [{ expect: ["a"] }], intervalSeconds);
  const base = asServerReturns(planAutomations([want], state([]), null)[0].body!, "id-0");
  const reason = (automation: ServerAutomation) => {
    const found = manifestTrigger(automation, DEPLOYMENT_ID, "nightly", 0, isMark);
    return "reason" in found ? found.reason : "a trigger";
  };
  const pause = { type: "pause-deployment", source: "selected", deployment_id: DEPLOYMENT_ID };
  assertEquals(reason(base), "a trigger");
  assertEquals(
    reason({ ...base, actions: [...base.actions, { type: "do-nothing" }] }),
    "it has 2 actions",
  );
  assertEquals(reason({ ...base, actions: [pause] }), 'its action is "pause-deployment"');
  assertEquals(
    reason({ ...base, actions: [{ ...base.actions[0], deployment_id: "another" }] }),
    "its action runs another deployment",
  );
  assertEquals(
    reason({ ...base, actions_on_resolve: [pause] }),
    "it has actions on trigger or on resolve",
  );
  assertEquals(
    reason({ ...base, tags: [...MARKS, "team", "ops"] }),
    "its tags (team, ops) have no place in a trigger",
  );
  assertEquals(
    reason({ ...base, trigger: { type: "compound", require: 1, triggers: [{ type: "novel" }] } }),
    'its child trigger is of a kind deploy.ts does not know ("novel")',
  );
});
