import type { StandardSchemaV1 } from '@standard-schema/spec';
import { GraftError } from '../core/errors.js';

/**
 * Any Standard Schema validator (zod 4, valibot, arktype): graft asks it to
 * validate the merged sources and keeps its output (defaults applied).
 */
export type ConfigSchema<Output = unknown> = StandardSchemaV1<unknown, Output>;

export interface ConfigIssue {
  path: string;
  message: string;
}

export function isStandardSchema(value: unknown): value is ConfigSchema {
  const std = (value as { '~standard'?: { version?: unknown; validate?: unknown } } | null)?.['~standard'];
  return typeof std === 'object' && std !== null && std.version === 1 && typeof std.validate === 'function';
}

function pathOf(issue: StandardSchemaV1.Issue): string {
  return (issue.path ?? []).map((seg) => String(typeof seg === 'object' ? seg.key : seg)).join('.');
}

type Validated<T> = { value: T } | { issues: ConfigIssue[] };

function outcome<T>(result: StandardSchemaV1.Result<T>): Validated<T> {
  if (result.issues) return { issues: result.issues.map((i) => ({ path: pathOf(i), message: i.message })) };
  return { value: result.value };
}

export async function validateConfig<T>(schema: ConfigSchema<T> | undefined, raw: unknown): Promise<Validated<T>> {
  if (!schema) return { value: raw as T };
  return outcome(await schema['~standard'].validate(raw));
}

/** For a first read that cannot wait: schemas with async refinements are refused. */
export function validateConfigSync<T>(schema: ConfigSchema<T> | undefined, raw: unknown): Validated<T> {
  if (!schema) return { value: raw as T };
  const result = schema['~standard'].validate(raw);
  if (result instanceof Promise) {
    throw new GraftError('GRAFT_CONFIG_INVALID', 'the config schema validates asynchronously; without a graft master the first read of config.current needs a synchronous schema');
  }
  return outcome(result);
}

/** GRAFT_CONFIG_INVALID with the issues, each naming its key path. */
export class ConfigInvalid extends GraftError {
  constructor(readonly issues: ConfigIssue[], where: string) {
    const list = issues
      .slice(0, 5)
      .map((i) => `${i.path || '(root)'}: ${i.message}`)
      .join('; ');
    const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : '';
    super('GRAFT_CONFIG_INVALID', `config from ${where} fails the schema: ${list}${more}`);
  }
}

export function issuesError(issues: ConfigIssue[], where: string): ConfigInvalid {
  return new ConfigInvalid(issues, where);
}
