import { assert, assertEquals } from "./assert.ts";
import { parseDocument } from "yaml";
import { yamlData, type YamlProblem } from "../lib/yaml_data.ts";

const LIMITS = { maxAliasValues: 250_000, maxDepth: 64 };
const CORPUS = new URL("./fixtures/corpus/prefect-yaml/", import.meta.url).pathname;

function read(text: string) {
  const doc = parseDocument(text, { merge: true, uniqueKeys: true, strict: true });
  return { doc, ...yamlData(doc, text, LIMITS) };
}

const kinds = (problems: YamlProblem[]) => problems.map((p) => p.kind);

Deno.test("yaml data: equal to the yaml package's own toJS on every corpus file", async () => {
  let compared = 0;
  for await (const entry of Deno.readDir(CORPUS)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(`${CORPUS}${entry.name}`);
    const { doc, data, problems } = read(text);
    // Refused by design (corpus_test checks those verdicts): an unquoted `{{ template }}` as a
    // key, an alias before its anchor.
    if (doc.errors.length || problems.length) continue;
    assertEquals(data, doc.toJS({ maxAliasCount: -1 }), entry.name);
    compared++;
  }
  assert(compared > 80, `compared ${compared} files`);
});

Deno.test("yaml data: merge keys and aliases as YAML defines them", () => {
  const { data, problems } = read(`
base: &base {a: 1, b: 2, nested: {x: 1}}
other: &other {b: 3, c: 4}
first: {<<: *base, a: 10}
explicit-before: {a: 10, <<: *base}
several: {<<: [*base, *other]}
quoted: {"<<": *base}
list: &list [*base]
proto: {__proto__: 1, constructor: 2}
`);
  assertEquals(problems, []);
  const d = data as Record<string, Record<string, unknown>>;
  assertEquals(d.first, { a: 10, b: 2, nested: { x: 1 } });
  assertEquals(d["explicit-before"], { a: 10, b: 2, nested: { x: 1 } });
  // The first source wins.
  assertEquals(d.several, { a: 1, b: 2, nested: { x: 1 }, c: 4 });
  assertEquals(d.quoted, { "<<": { a: 1, b: 2, nested: { x: 1 } } });
  assertEquals(Object.keys(d.proto), ["__proto__", "constructor"]);
  assertEquals(Object.getPrototypeOf(d.proto), Object.prototype);
});

Deno.test("yaml data: 2,000 merges are ordinary YAML; a billion laughs is refused at its alias", () => {
  const items = Array.from({ length: 2000 }, (_, i) => `  - {<<: *base, name: d${i}}`);
  const many = read(`base: &base {entrypoint: f.py:f, tags: [a, b], work_pool: {name: p}}
deployments:
${items.join("\n")}
`);
  assertEquals(many.problems, []);
  assertEquals((many.data as { deployments: unknown[] }).deployments.length, 2000);

  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (const [prev, next] of ["ab", "bc", "cd", "de", "ef", "fg", "gh", "hi"]) {
    lines.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(",")}]`);
  }
  const text = lines.join("\n");
  const started = performance.now();
  const bomb = read(text);
  assertEquals(kinds(bomb.problems), ["too-many-values"]);
  assertEquals(bomb.data, undefined);
  // Where the expansion passes the limit: the 9^6 level.
  assertEquals(text.slice(0, bomb.problems[0].offset).split("\n").length, 6);
  assert(performance.now() - started < 1000, "refused fast");
});

Deno.test("yaml data: structural problems refuse the document, each located", () => {
  assertEquals(kinds(read("a: &a [1, *a]\n").problems), ["recursive-alias"]);
  assertEquals(kinds(read("a: *nope\n").problems), ["undefined-alias"]);
  assertEquals(kinds(read("a: &a 1\nb: {<<: *a}\n").problems), ["merge-source"]);
  assertEquals(kinds(read("? [a]\n: 1\n").problems), ["collection-key"]);
  const deep = read(
    `x: &x ${"[".repeat(40)}1${"]".repeat(40)}\ny: ${"[".repeat(30)}*x${"]".repeat(30)}\n`,
  );
  assertEquals(kinds(deep.problems), ["too-deep"]);
  assertEquals(deep.data, undefined);
});

Deno.test("yaml data: integers beyond 2^53 and .inf are located problems, the rest kept", () => {
  const text = `ok: 9007199254740991
big: 9007199254740993
negative: -9007199254740993
hex: 0x20000000000001
float: 1e300
quoted: "9007199254740993"
inf: .inf
`;
  const { data, problems } = read(text);
  assertEquals(
    problems.map((p) => [p.kind, text.slice(0, p.offset).split("\n").length]),
    [["unsafe-integer", 2], ["unsafe-integer", 3], ["unsafe-integer", 4], ["non-finite", 7]],
  );
  assertEquals((data as Record<string, unknown>).ok, 9007199254740991);
  assertEquals((data as Record<string, unknown>).quoted, "9007199254740993");
});
