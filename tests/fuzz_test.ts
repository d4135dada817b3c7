/**
 * A bounded fuzz test of `validate`, so the class of crash stays closed: a few hundred
 * mutations of the real prefect.yaml files in tests/fixtures/corpus, from a fixed seed (the same
 * cases every run; set DEPLOY_FUZZ_SEED to explore others). Each mutated manifest must give
 * exit 0 or 1, exactly one JSON document, diagnostics located in that file, no stack trace and
 * no internal error, within a time bound. Runs `main()` in-process: a process per case would
 * take minutes.
 */
import { assert, assertEquals } from "./assert.ts";
import { main } from "../deploy.ts";

const CORPUS = new URL("./fixtures/corpus/prefect-yaml/", import.meta.url).pathname;
const MUTATIONS = 400;
const SEED = Number(Deno.env.get("DEPLOY_FUZZ_SEED") ?? 14);
/** Per mutated file; validation of one real manifest takes milliseconds. */
const BOUND_MS = 5000;
/** Codes a diagnostic may carry without a line: it is about the whole file. */
const FILE_LEVEL = new Set(["binary-file", "file-too-large", "empty-file", "path-unreadable"]);

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What makes YAML, templates, numbers and paths go wrong. */
const TOKENS = [
  "&a ",
  "*a",
  "<<: *a\n",
  "<<: [*a, *b]\n",
  "&b {x: *b}",
  "{{ ",
  " }}",
  "{{ $DEPLOY_X }}",
  "{{ prefect.blocks.secret.x }}",
  "- ",
  ": ",
  "\t",
  "---\n",
  '"',
  "'",
  "[",
  "{",
  "]",
  "}",
  "# ",
  "!!binary ",
  "!!python/object ",
  "? ",
  "|\n",
  ">-\n",
  "9007199254740993",
  "-0x1F",
  "1e400",
  ".inf",
  ".nan",
  "~",
  "null",
  "@",
  "%",
  "\u0000",
  "\ufeff",
  "\r",
  "é",
  "😀",
  "0o777",
  "yes",
  "on",
  "2026-13-45",
  "deploy.ts/x.py:f",
  "/dev/zero:f",
  "../../etc/passwd:f",
  `${"a".repeat(300)}.py:f`,
  "flows/loop.py:f",
  "<<<<<<< HEAD\n",
  "x".repeat(5000),
  "[".repeat(70),
  "- - - - - - - - ",
  "schedules: [{cron: '* * * * * * *'}]",
  "interval: -1",
  "interval: 100000000000000",
  "name: a/b",
  "rrule: 'FREQ=NEVER'",
  "timezone: Mars/Olympus",
];

/** Values for the keys whose values reach the file system, the schema's limits and the server. */
const HOSTILE_VALUES = [
  "deploy.ts/x.py:f",
  "/dev/zero:f",
  "/dev/zero",
  "../../../etc/passwd:f",
  "flows/loop.py:f",
  `flows/${"a".repeat(300)}.py:f`,
  `${"b".repeat(300)}:f`,
  "tests/fixtures:f",
  "x/y",
  "a%b",
  "9007199254740993",
  "-9007199254740993",
  "100000000000000",
  "1e400",
  ".inf",
  "-1",
  "0",
  '"{{ $DEPLOY_X }}"',
  '"{{ prefect.variables.x }}"',
  "*a",
  "&a x",
  "[*a]",
  "{<<: *a}",
  "~",
  '"* * * * * * * *"',
  "P1000000000D",
  "Mars/Olympus",
  "FREQ=NEVER",
  "ENQUEUE",
  "yes",
];
const KEYED =
  /^(\s*-?\s*)(entrypoint|name|flow_name|interval|cron|rrule|timezone|slug|limit|max_scheduled_runs|concurrency_limit|work_queue_name|anchor_date|paused|active|version|tags):.*$/;

function mutate(text: string, next: () => number): string {
  const pick = <T>(items: T[]) => items[Math.floor(next() * items.length)];
  const at = () => Math.floor(next() * (text.length + 1));
  const lines = text.split("\n");
  const line = () => Math.floor(next() * lines.length);
  switch (Math.floor(next() * 11)) {
    case 9:
    case 10: {
      // A known key's value replaced by something hostile.
      const keyed = lines.flatMap((l, i) => KEYED.test(l) ? [i] : []);
      if (!keyed.length) return text;
      const i = pick(keyed);
      lines[i] = lines[i].replace(
        KEYED,
        (_, indent, key) => `${indent}${key}: ${pick(HOSTILE_VALUES)}`,
      );
      return lines.join("\n");
    }
    case 0: {
      const i = at();
      return text.slice(0, i) + String.fromCharCode(32 + Math.floor(next() * 95)) +
        text.slice(i + 1);
    }
    case 1: {
      const i = at();
      return text.slice(0, i) + text.slice(i + 1 + Math.floor(next() * 80));
    }
    case 2: {
      const i = line();
      lines.splice(i, 0, lines[i]);
      return lines.join("\n");
    }
    case 3: {
      const i = at();
      return text.slice(0, i) + pick(TOKENS) + text.slice(i);
    }
    case 4: {
      const [i, j] = [line(), line()];
      [lines[i], lines[j]] = [lines[j], lines[i]];
      return lines.join("\n");
    }
    case 5: {
      const i = line();
      lines[i] = next() < 0.5 ? `  ${lines[i]}` : lines[i].replace(/^ {1,2}/, "");
      return lines.join("\n");
    }
    case 6: {
      // A value replaced by something hostile.
      const i = line();
      lines[i] = lines[i].replace(/:\s.*$/, `: ${pick(TOKENS)}`);
      return lines.join("\n");
    }
    case 7:
      return text.slice(0, at());
    default: {
      const fragment = 'bomb: &l0 ["x","x","x","x","x","x","x","x","x"]\n' +
        Array.from({ length: 8 }, (_, k) => `l${k + 1}: &l${k + 1} [${Array(9).fill(`*l${k}`)}]`)
          .join("\n");
      return `${fragment}\n${text}`;
    }
  }
}

/** Runs `deploy validate --format json FILE` in this process, capturing what it prints. */
async function validateInProcess(
  path: string,
  codeChecks: boolean,
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  console.log = (...args: unknown[]) => out.push(args.join(" "));
  console.error = (...args: unknown[]) => err.push(args.join(" "));
  console.warn = console.error;
  try {
    const flags = codeChecks ? [] : ["--no-code-checks"];
    const code = await main(["validate", "--format", "json", ...flags, path]);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    Object.assign(console, { log, error, warn });
  }
}

Deno.test("fuzz: mutated real manifests never crash validate, hang it or break its JSON", async () => {
  const corpus: { name: string; text: string }[] = [];
  for await (const entry of Deno.readDir(CORPUS)) {
    if (entry.name.endsWith(".yaml")) {
      corpus.push({ name: entry.name, text: await Deno.readTextFile(`${CORPUS}${entry.name}`) });
    }
  }
  corpus.sort((a, b) => a.name.localeCompare(b.name));
  assert(corpus.length > 80, `${corpus.length} corpus files`);
  const next = random(SEED);
  const dir = await Deno.makeTempDir({ prefix: "deploy-ts-fuzz-" });
  const failures: string[] = [];
  const codes = { valid: 0, invalid: 0 };
  const seen = new Set<string>();
  let slowest = 0;
  try {
    for (let i = 0; i < MUTATIONS; i++) {
      const source = corpus[Math.floor(next() * corpus.length)];
      let text = source.text;
      const rounds = 1 + Math.floor(next() * 3);
      for (let r = 0; r < rounds; r++) text = mutate(text, next);
      const path = `${dir}/case-${i}.yaml`;
      await Deno.writeTextFile(path, text);
      const label = `case ${i} (from ${source.name}, seed ${SEED})`;
      const started = performance.now();
      // Half with the checks that read flow files: mutated entrypoints name hostile paths.
      const { code, out, err } = await validateInProcess(path, i % 2 === 0);
      const elapsed = performance.now() - started;
      slowest = Math.max(slowest, elapsed);
      const problems: string[] = [];
      if (code !== 0 && code !== 1) problems.push(`exit ${code}`);
      if (elapsed > BOUND_MS) problems.push(`took ${elapsed.toFixed(0)} ms`);
      if (/internal error|\n\s+at |Stack backtrace/.test(out + err)) {
        problems.push(`crashed: ${(out + err).slice(0, 300)}`);
      }
      let json: { valid?: boolean; diagnostics?: Record<string, unknown>[] } | undefined;
      try {
        json = JSON.parse(out);
      } catch {
        problems.push(`not one JSON document: ${out.slice(0, 200)} ${err.slice(0, 200)}`);
      }
      if (json) {
        if (json.valid !== (code === 0)) problems.push(`valid ${json.valid} but exit ${code}`);
        const lineCount = text.split("\n").length;
        for (const d of json.diagnostics ?? []) {
          const located = d.file === path && (
            d.line === null
              ? FILE_LEVEL.has(d.code as string)
              : Number(d.line) >= 1 && Number(d.line) <= lineCount + 1 && Number(d.column) >= 1
          );
          if (!located) problems.push(`unlocated: ${JSON.stringify(d)}`);
          seen.add(d.code as string);
        }
        codes[code === 0 ? "valid" : "invalid"]++;
      }
      if (problems.length) {
        failures.push(`${label}: ${problems.join("; ")}`);
        await Deno.copyFile(path, `${dir}/../deploy-ts-fuzz-failure-${i}.yaml`).catch(() => {});
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(failures, []);
  // The mutations reach both outcomes and many checks, not only the YAML parser's.
  assert(codes.valid >= 20 && codes.invalid >= 100, JSON.stringify(codes));
  assert(seen.size >= 15, `diagnostic codes reached: ${[...seen].join(", ")}`);
  assert(slowest < BOUND_MS, `slowest ${slowest.toFixed(0)} ms`);
});
