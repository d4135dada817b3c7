/**
 * `deno task pins VERSION...`: (re)writes `tests/prefect-pins/<version>.txt`, the pin set the
 * test harness installs for that Prefect release. A fresh virtual environment gets
 * `prefect==VERSION` plus the file's `# requires:` lines (constraints and additions, each with
 * the reason the newest release does not do), and `pip freeze` becomes the pin lines. The
 * header and its reasons are kept as written; a new file starts with none.
 *
 * Then run the harness on it (DEPLOY_TEST_PREFECT_VERSION=VERSION) before committing.
 */
import { createVenv, pinLines, pinsFile } from "../tests/prefect_server.ts";

const REQUIRES = /^#\s*requires:\s*(\S+)/;

async function pin(version: string) {
  const file = pinsFile(version);
  const existing = await Deno.readTextFile(file).catch(() => undefined);
  const header = existing ? existing.split("\n").filter((l) => l.startsWith("#")) : [
    `# Prefect ${version} for the test harness (DEPLOY_TEST_PREFECT_VERSION=${version}): every`,
    `# package pinned. Regenerate with \`deno task pins ${version}\`; each \`requires:\` line says`,
    "# why the newest release of a package will not do.",
  ];
  const requires = header.map((l) => l.match(REQUIRES)?.[1]).filter((r): r is string => !!r);
  const dir = await Deno.makeTempDir({ prefix: `deploy-ts-pins-${version}-` });
  try {
    await createVenv(`${dir}/venv`);
    const pip = async (args: string[]) => {
      const output = await new Deno.Command(`${dir}/venv/bin/pip`, {
        args: ["--disable-pip-version-check", ...args],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!output.success) throw new Error(`pip ${args.join(" ")} failed`);
      return new TextDecoder().decode(output.stdout);
    };
    console.error(`pip install prefect==${version} ${requires.join(" ")}`);
    await pip(["install", "--quiet", `prefect==${version}`, ...requires]);
    const frozen = pinLines(await pip(["freeze"]));
    await Deno.writeTextFile(file, [...header, ...frozen, ""].join("\n"));
    console.error(`${file}: ${frozen.length} pins`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (!Deno.args.length) {
  console.error("usage: deno task pins VERSION...");
  Deno.exit(1);
}
for (const version of Deno.args) await pin(version);
