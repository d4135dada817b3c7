/**
 * Imported first by deploy.ts: npm libraries read debug switches from process.env (yaml reads
 * LOG_TOKENS for every token, @lezer/lr reads LOG when it loads). Under Deno each read is a
 * permission-checked call and would need its own --allow-env name; none of these libraries
 * needs the environment, so they see an empty one. deploy.ts itself reads Deno.env.
 */
import process from "node:process";

Object.defineProperty(process, "env", { value: {}, configurable: true });
