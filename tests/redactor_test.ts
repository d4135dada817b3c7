import { assert, assertEquals } from "./assert.ts";
import { encodings, Redactor } from "../lib/redactor.ts";
import { findLeaks, type Secret } from "./leaks.ts";

const SECRETS: Secret[] = [
  { kind: "API key", value: "pnu_K3yS3cr3tVa1ue0123456789" },
  { kind: "auth string", value: "admin:Aut/h&Str1ng é", basicAuth: true },
  { kind: "custom header", value: 'tok"en\\Secret88 with%percent' },
  { kind: "block value", value: "line one\nline two <b>bold</b>" },
];

function redactor(): Redactor {
  const r = new Redactor();
  for (const s of SECRETS) r.add(s.value, { basicAuth: s.basicAuth });
  return r;
}

Deno.test("redactor: every encoding of every secret is hidden, in any surrounding text", () => {
  const r = redactor();
  for (const secret of SECRETS) {
    for (const form of encodings(secret.value, secret.basicAuth)) {
      const text = `before ${form} after`;
      assertEquals(r.redact(text), "before *** after", `${secret.kind}: ${form}`);
    }
  }
  // The forms a real output has: a JSON document holding an error that quotes a JSON body.
  const inner = JSON.stringify({ headers: SECRETS.map((s) => s.value) });
  const output = JSON.stringify({
    error: `422 ${inner}`,
    url: encodeURIComponent(SECRETS[0].value),
  });
  assert(findLeaks(output, SECRETS).length > 0, "the leak finder finds the unredacted output");
  assertEquals(findLeaks(r.redact(output), SECRETS), []);
  JSON.parse(r.redact(output));
});

Deno.test("redactor: a secret containing another is hidden whole, short values are left", () => {
  const r = new Redactor();
  r.add("abcdef");
  r.add("abcdefghij");
  r.add("ab");
  assertEquals(r.redact("x abcdefghij y abcdef z ab"), "x *** y *** z ab");
});

Deno.test("redactor: secrets may be added while running, values of any JSON shape", () => {
  const r = new Redactor();
  assertEquals(r.redact("hunter2-secret"), "hunter2-secret");
  r.addValue({ user: "someone-x", password: "hunter2-secret", port: 54321, list: ["deep-value"] });
  assertEquals(r.redact("hunter2-secret someone-x 54321 deep-value"), "*** *** *** ***");
});
