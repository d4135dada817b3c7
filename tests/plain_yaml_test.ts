/**
 * lib/plain_yaml.ts against the full reader deploy.ts falls back to (the `yaml` package and
 * lib/yaml_data.ts): whatever the fast reader accepts, the full one must read without a problem
 * to the same data (same key order, same numbers) with every key and value at the same offset. Inputs: the real corpus, this
 * repository's manifests, hand-written cases at the subset's edges, and a few thousand
 * mutations of the corpus (each one character inserted, deleted or replaced).
 */
import { assert, assertEquals } from "./assert.ts";
import { locateSpot, readPlainYaml } from "../lib/plain_yaml.ts";
import { locate, MAX_ALIAS_VALUES, MAX_NESTING, parseFullYaml } from "../deploy.ts";
import { yamlData } from "../lib/yaml_data.ts";

const REPO = new URL("../", import.meta.url).pathname;

function sameData(a: unknown, b: unknown, where = "$"): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return `${where}: ${String(a)} (${typeof a}) vs ${String(b)} (${typeof b})`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${where}: list vs mapping`;
  const [ka, kb] = [Object.keys(a), Object.keys(b)];
  if (ka.join("\u0000") !== kb.join("\u0000")) return `${where}: keys ${ka} vs ${kb}`;
  for (const k of ka) {
    const found = sameData(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      `${where}.${k}`,
    );
    if (found) return found;
  }
  return undefined;
}

function* paths(value: unknown, path: (string | number)[] = []): Generator<(string | number)[]> {
  yield path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* paths(value[i], [...path, i]);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) yield* paths(v, [...path, k]);
  }
}

/** Why the fast reader's result differs from the full parser's, if it accepted the text. */
async function disagreement(text: string): Promise<string | undefined> {
  const fast = readPlainYaml(text, MAX_NESTING);
  if (!fast) return undefined;
  const docs = await parseFullYaml(text);
  if (docs.length !== 1) return `fast read it, yaml finds ${docs.length} documents`;
  const [doc] = docs;
  if (doc.errors.length) return `fast read it, yaml says: ${doc.errors[0].message}`;
  const full = yamlData(doc, text, { maxAliasValues: MAX_ALIAS_VALUES, maxDepth: MAX_NESTING });
  if (full.problems.length) return `fast read it, the full reader says: ${full.problems[0].kind}`;
  const data = full.data;
  const differs = sameData(fast.data, data);
  if (differs) return `data differs at ${differs}`;
  for (const path of paths(data)) {
    const found = locate(doc, path, full.aliases);
    const spot = locateSpot(fast.spots, path);
    const want = { key: found.key?.range?.[0], value: found.value?.range?.[0] };
    const got = { key: spot.key, value: spot.value };
    if (want.key !== got.key || want.value !== got.value) {
      return `position of ${JSON.stringify(path)}: yaml ${JSON.stringify(want)}, fast ${
        JSON.stringify(got)
      }`;
    }
  }
  return undefined;
}

async function texts(dir: string): Promise<[string, string][]> {
  const found: [string, string][] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (/\.ya?ml$/.test(entry.name)) {
      found.push([entry.name, await Deno.readTextFile(`${dir}/${entry.name}`)]);
    }
  }
  return found;
}

const CORPUS = `${REPO}tests/fixtures/corpus/prefect-yaml`;

Deno.test("plain YAML: the corpus and our manifests read as the full parser reads them", async () => {
  const files = [
    ...await texts(CORPUS),
    ...await texts(`${REPO}prefect`),
    ...await texts(`${REPO}prefect/environments`),
  ];
  let fast = 0;
  for (const [name, text] of files) {
    assertEquals(await disagreement(text), undefined, name);
    if (readPlainYaml(text, MAX_NESTING)) fast++;
  }
  // The point of the subset: most real files are in it.
  assert(fast >= files.length * 0.6, `${fast} of ${files.length} files read by the fast path`);
});

const EDGES = [
  "a: 1\nb: -2\nc: +3\nd: 0o17\ne: 0x1F\nf: 1.5\ng: .5\nh: 1.\ni: 1e3\nj: -0\nk: 1.0e-3\n",
  "j: -.inf\nk: .NaN\n",
  "a: ~\nb: null\nc: Null\nd: NULL\ne: true\nf: False\ng: yes\nh: off\ni: 007\nj: 1_000\n",
  "a:\nb: # comment\nc: 'it''s'\nd: \"tab\\there \\u00e9 \\x41 \\U0001F600\"\ne: \"\"\nf: ''\n",
  "list:\n- a\n- b\nnested:\n  - - x\n    - y\n  - k: v\n    k2: v2\n  -\n  - \n",
  "flow: {a: 1, 'b': \"two\", c: [x, y, {z: null}], d: []}\nempty: {}\nseq: [1, 2, ]\n",
  'url: http://example.com/a#b\ncron: "*/5 * * * *"\npath: ./flows/a.py:main # comment\n',
  "---\n# only comments before\nkey: value\n",
  "- top\n- level: [sequence]\n",
  "scalar alone\n",
  "key:\n  value on the next line\n",
  "a: b: c\n",
  "a: 1\na: 2\n",
  "a: &x 1\nb: *x\n",
  "a: !tag 1\n",
  "a: |\n  block\n",
  "a: >-\n  folded\n",
  "a: [1,\n  2]\n",
  "a: plain\n  continued\n",
  'a: "quoted\n  continued"\n',
  "? complex\n: key\n",
  "<<: {a: 1}\nb: 2\n",
  "1: number key\n",
  "a: 1\n---\nb: 2\n",
  "%YAML 1.2\n---\na: 1\n",
  "a: 1\n...\n",
  "a:\n  b: 1\n c: 2\n",
  "- a\n - b\n",
  "a: {b: 1}: 2\n",
  "a: [b: 1]\n",
  "a: {b, c}\n",
  "a: {b:1}\n",
  "a: @at\n",
  "a: `tick`\n",
  "a: 'x'#not a comment\n",
  "a:\tb\n",
  "a: 1\r\nb: 2\r\n",
  "__proto__: x\n",
  "a: - b\n",
  "- - - deep\n  - mid\n- top\n",
  "a:\n- b\n- c\nd: e\n",
  "",
  "# nothing\n",
  "big: 12345678901234567890\nhex: 0x1FFFFFFFFFFFFF1\nhuge: 1e400\n",
  `deep: ${"[".repeat(70)}1${"]".repeat(70)}\n`,
];

Deno.test("plain YAML: edge cases either read as the full parser reads them or fall back", async () => {
  let accepted = 0;
  for (const text of EDGES) {
    assertEquals(await disagreement(text), undefined, JSON.stringify(text));
    if (readPlainYaml(text, MAX_NESTING)) accepted++;
  }
  assert(accepted >= 12, `${accepted} edge cases read by the fast path`);
  assertEquals(readPlainYaml("a: &x 1\nb: *x\n"), undefined);
  assertEquals(readPlainYaml("a: 1\na: 2\n"), undefined);
  assertEquals(readPlainYaml("a: [1, 2]\n")?.data, { a: [1, 2] });
  // Numbers JSON cannot carry exactly and deep nesting are the full reader's to report.
  assertEquals(readPlainYaml("a: 9007199254740993\n"), undefined);
  assertEquals(readPlainYaml("a: .inf\n"), undefined);
  assertEquals(readPlainYaml("a: [[[1]]]\n", 3), undefined);
  assertEquals(readPlainYaml("a: [[[1]]]\n", 4)?.data, { a: [[[1]]] });
});

Deno.test("plain YAML: mutated corpus files never read differently", async () => {
  const files = await texts(CORPUS);
  let seed = 13;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const alphabet = [
    ":",
    " ",
    "-",
    "#",
    "'",
    '"',
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "a",
    "1",
    "&",
    "*",
  ];
  let cases = 0;
  let accepted = 0;
  for (const [name, text] of files) {
    for (let m = 0; m < 30; m++) {
      const at = random(text.length + 1);
      const ch = alphabet[random(alphabet.length)];
      const mutated = [
        text.slice(0, at) + ch + text.slice(at),
        text.slice(0, at) + text.slice(at + 1),
        text.slice(0, at) + ch + text.slice(at + 1),
      ][random(3)];
      cases++;
      if (readPlainYaml(mutated, MAX_NESTING)) accepted++;
      const found = await disagreement(mutated);
      assertEquals(
        found,
        undefined,
        `${name}, mutation at ${at}: ${
          JSON.stringify(mutated.slice(Math.max(0, at - 40), at + 40))
        }`,
      );
    }
  }
  assert(accepted > cases / 4, `${accepted} of ${cases} mutations read by the fast path`);
});
