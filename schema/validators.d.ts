// The types of schema/validators.js, which `deno task validators` generates.
import type { ValidateFunction } from "ajv";

/** The digest (deploy.ts `schemaDigest()`) of the schema the validators were compiled from. */
export declare const SCHEMA_DIGEST: string;
/** The whole manifest schema. */
export declare const validate: ValidateFunction;
/** `#/definitions/environment`: an environment overlay. */
export declare const environment: ValidateFunction;
