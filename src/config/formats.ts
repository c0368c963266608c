import { parse as parseToml, TomlError } from 'smol-toml';
import { parseEnv } from 'node:util';
import { basename, extname } from 'node:path';
import { parse as parseJsonLocated, ParseErrorCode, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { GraftError } from '../core/errors.js';
import { setPath } from './key-path.js';

/** The config file formats graft reads, each with its real parser. */
export type Format = 'json' | 'yaml' | 'toml' | 'env';

export function formatOf(file: string): Format | undefined {
  const name = basename(file);
  if (name === '.env' || name.startsWith('.env.') || extname(name) === '.env') return 'env';
  switch (extname(name).toLowerCase()) {
    case '.json':
      return 'json';
    case '.yaml':
    case '.yml':
      return 'yaml';
    case '.toml':
      return 'toml';
  }
  return undefined;
}

function parseError(file: string, line: number | undefined, column: number | undefined, what: string): GraftError {
  const where = line ? `${file}:${line}${column ? `:${column}` : ''}` : file;
  return new GraftError('GRAFT_CONFIG_PARSE', `${where}: ${what}; fix it`);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/**
 * An unclosed quote is found by the YAML parser where the document ends; the
 * fault is the line that opened it: the last one before that with an odd
 * number of that quote.
 */
function openingQuote(text: string, err: YAMLParseError): { line: number; col: number } | undefined {
  const quote = err.code === 'MISSING_CHAR' ? /closing (["'])quote/.exec(err.message)?.[1] : undefined;
  if (!quote) return undefined;
  const lines = text.slice(0, err.pos[0]).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if ((lines[i]!.split(quote).length - 1) % 2 === 1) return { line: i + 1, col: lines[i]!.indexOf(quote) + 1 };
  }
  return undefined;
}

/** Parse one file's text into a plain object, or throw an error naming the file and line. */
export function parseConfigText(text: string, file: string, format: Format): Record<string, unknown> {
  if (text.includes('\u0000')) throw parseError(file, undefined, undefined, 'contains binary data (NUL bytes), not a config file');
  if (text.trim() === '') throw parseError(file, undefined, undefined, 'is empty');
  let value: unknown;
  switch (format) {
    case 'json':
      try {
        value = JSON.parse(text);
      } catch (err) {
        const errors: ParseError[] = [];
        parseJsonLocated(text, errors, { disallowComments: true, allowTrailingComma: false });
        const first = errors[0];
        if (first) {
          // A missing value, comma or bracket is found at the next token, often on a later line: the fault is right after the last one.
          const missing = first.error === ParseErrorCode.ValueExpected || first.error === ParseErrorCode.CommaExpected || first.error === ParseErrorCode.CloseBraceExpected || first.error === ParseErrorCode.CloseBracketExpected;
          const { line, column } = lineColumn(text, missing ? text.slice(0, first.offset).trimEnd().length : first.offset);
          throw parseError(file, line, column, `invalid JSON (${printParseErrorCode(first.error)})`);
        }
        throw parseError(file, undefined, undefined, `invalid JSON (${(err as Error).message})`);
      }
      break;
    case 'yaml':
      try {
        value = parseYaml(text);
      } catch (err) {
        if (err instanceof YAMLParseError) {
          const pos = openingQuote(text, err) ?? err.linePos?.[0];
          throw parseError(file, pos?.line, pos?.col, `invalid YAML (${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')})`);
        }
        throw parseError(file, undefined, undefined, `invalid YAML (${(err as Error).message})`);
      }
      break;
    case 'toml':
      try {
        value = parseToml(text);
      } catch (err) {
        if (err instanceof TomlError) {
          throw parseError(file, err.line, err.column, `invalid TOML (${err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '')})`);
        }
        throw parseError(file, undefined, undefined, `invalid TOML (${(err as Error).message})`);
      }
      break;
    case 'env': {
      checkEnvSyntax(text, file);
      const out: Record<string, unknown> = {};
      for (const [key, raw] of Object.entries(parseEnv(text))) if (raw !== undefined) setPath(out, envKeyPath(key), coerce(raw));
      value = out;
      break;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw parseError(file, undefined, undefined, `top level must be a mapping of keys, not ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
  }
  // Config crosses IPC as JSON: normalize now (TOML/YAML dates become ISO strings) so every process sees the same data.
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/** `DB__POOL_SIZE` → ['db', 'poolSize']: `__` nests, segments become camelCase. */
export function envKeyPath(name: string): string[] {
  return name
    .split('__')
    .filter((s) => s !== '')
    .map((segment) => segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
}

/** Text from an env var or a --set flag: JSON when it parses (numbers, booleans, lists), else the string. */
export function coerce(raw: string): unknown {
  const t = raw.trim();
  if (t === '') return raw;
  if (/^(?:-?\d|true$|false$|null$|\[|\{|")/.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      // not JSON: keep the text
    }
  }
  return raw;
}

/**
 * parseEnv skips lines it does not understand; a config file should not. Every
 * line must be blank, a comment, or KEY=value (a quoted value may span lines).
 */
function checkEnvSyntax(text: string, file: string): void {
  const lines = text.split(/\r?\n/);
  let openQuote: string | undefined;
  lines.forEach((line, i) => {
    if (openQuote) {
      if (line.includes(openQuote)) openQuote = undefined;
      return;
    }
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=\s*(.*)$/.exec(t);
    if (!m) throw parseError(file, i + 1, 1, `invalid .env line (expected KEY=value): ${JSON.stringify(t.slice(0, 40))}`);
    const value = m[1]!;
    const q = value[0];
    if ((q === '"' || q === "'" || q === '`') && !value.slice(1).includes(q)) openQuote = q;
  });
  if (openQuote) throw parseError(file, lines.length, undefined, `unterminated ${openQuote} quoted value`);
}
