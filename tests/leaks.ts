/**
 * Finds secrets in output, in every form a secret can take there, written independently of
 * lib/redactor.ts so a form it forgets is caught. A secret cut short (a half-redacted prefix) is
 * found too: any run of WINDOW characters of any form counts as a leak.
 */

export interface Secret {
  /** What the secret is, for the failure message ("API key"). */
  kind: string;
  value: string;
  /** Sent as `Basic base64(value)`. */
  basicAuth?: boolean;
}

const WINDOW = 10;

function forms(secret: Secret): string[] {
  const v = secret.value;
  const json = JSON.stringify(v).slice(1, -1);
  const utf8 = new TextEncoder().encode(v);
  const all = [
    v,
    json,
    JSON.stringify(json).slice(1, -1),
    json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
    encodeURIComponent(v),
    encodeURIComponent(v).replace(/%20/g, "+"),
    v.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;"),
    v.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A"),
  ];
  if (secret.basicAuth) all.push(btoa(String.fromCharCode(...utf8)));
  return [...new Set(all)];
}

/** Every leak of every secret in `output`, as "kind (form …): context". */
export function findLeaks(output: string, secrets: Secret[]): string[] {
  const leaks: string[] = [];
  for (const secret of secrets) {
    for (const form of forms(secret)) {
      const width = Math.min(WINDOW, form.length);
      for (let i = 0; i + width <= form.length; i++) {
        const at = output.indexOf(form.slice(i, i + width));
        if (at >= 0) {
          leaks.push(
            `${secret.kind} ${JSON.stringify(form)}: …${
              output.slice(Math.max(0, at - 40), at + 40)
            }…`,
          );
          break;
        }
      }
    }
  }
  return leaks;
}
