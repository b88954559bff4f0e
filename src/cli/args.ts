// One option table per command: `node:util` parseArgs parses it (strict: unknown options and missing
// values are usage errors) and the same table prints the command's --help, so the two cannot drift.
// Exit codes of every command: 0 ok, 1 failure, 2 usage error (docs/cli.md).
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LiveMrError } from '../errors/index.js';

/** Bad command line: printed with a pointer to --help, exit code 2. */
export class UsageError extends LiveMrError {
  override name = 'UsageError';
  readonly code = 'CLI_USAGE';
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** the value's name in the help, e.g. DIR */
  arg?: string;
  help: string;
}
export type Options = Record<string, OptionSpec>;

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true; tokens: true }>>;
export type Values<O extends Options> = Parsed<O>['values'];
export type Token = NonNullable<Parsed<Options>['tokens']>[number];

export interface CommandSpec<O extends Options> {
  /** full name as typed, e.g. 'image map' */
  name: string;
  summary: string;
  /** positional synopsis, e.g. 'IMAGE OFFSET LENGTH' */
  args?: string;
  /** how many positionals: exact number or [min, max] (max Infinity); default 0 */
  positionals?: number | [number, number];
  options: O;
  /** extra help lines after the options */
  notes?: string;
  /** adds --config FILE: a JSON object of option values (same names; the command line wins) */
  configFile?: boolean;
  run(a: { values: Values<O>; positionals: string[]; tokens: Token[] }): Promise<number>;
}

/** A command with its option types erased, as the dispatcher holds it. */
export interface Command {
  name: string;
  summary: string;
  help(): string;
  invoke(argv: string[]): Promise<number>;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'print this help and exit' };
const CONFIG: OptionSpec = { type: 'string', arg: 'FILE', help: 'JSON object of option values, keyed by option name (the command line wins)' };

/** Reads a --config file against the option table: unknown keys and wrong types are usage errors. */
export function readOptionFile(file: string, options: Options): Record<string, string | boolean | string[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`--config ${file}: must be a JSON object`);
  const out: Record<string, string | boolean | string[]> = {};
  for (const [k, v] of Object.entries(raw)) {
    const o = options[k];
    if (!o || k === 'config' || k === 'help') throw new UsageError(`--config ${file}: unknown key '${k}' (allowed: ${Object.keys(options).filter((n) => n !== 'config').join(', ')})`);
    const ok = o.multiple ? Array.isArray(v) && v.every((x) => typeof x === o.type) : typeof v === o.type;
    if (!ok) throw new UsageError(`--config ${file}: '${k}' must be ${o.multiple ? `an array of ${o.type}s` : `a ${o.type}`}`);
    out[k] = v as string | boolean | string[];
  }
  return out;
}

const allOptions = (spec: CommandSpec<Options>): Options => ({ ...spec.options, ...(spec.configFile ? { config: CONFIG } : {}), help: HELP });

export function helpText(spec: CommandSpec<Options>): string {
  const opts = Object.entries(allOptions(spec));
  const left = opts.map(([name, o]) => `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines = [
    `usage: livemr ${spec.name}${Object.keys(spec.options).length ? ' [OPTIONS]' : ''}${spec.args ? ` ${spec.args}` : ''}`,
    '',
    spec.summary,
    '',
    'options:',
    ...opts.map(([, o], i) => `  ${left[i]!.padEnd(width)}${o.help}${o.multiple ? ' (repeatable)' : ''}`),
  ];
  if (spec.notes) lines.push('', spec.notes);
  return `${lines.join('\n')}\n`;
}

export function command<const O extends Options>(spec: CommandSpec<O>): Command {
  const hinted = (e: UsageError) => new UsageError(`${e.message}\n(see 'livemr ${spec.name} --help')`);
  return {
    name: spec.name,
    summary: spec.summary,
    help: () => helpText(spec as unknown as CommandSpec<Options>),
    async invoke(argv) {
      const options = allOptions(spec as unknown as CommandSpec<Options>);
      const config = { args: argv, options, allowPositionals: true, strict: true, tokens: true } satisfies ParseArgsConfig;
      let parsed;
      try {
        parsed = parseArgs(config);
      } catch (e) {
        if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw hinted(new UsageError((e as Error).message));
        throw e;
      }
      if ((parsed.values as { help?: boolean }).help) {
        process.stdout.write(helpText(spec as unknown as CommandSpec<Options>));
        return 0;
      }
      try {
        const [min, max] = typeof spec.positionals === 'number' ? [spec.positionals, spec.positionals] : (spec.positionals ?? [0, 0]);
        const n = parsed.positionals.length;
        if (n < min) throw new UsageError(`missing ${spec.args ?? 'arguments'}`);
        if (n > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}'`);
        const file = (parsed.values as { config?: string }).config;
        const values = spec.configFile && file !== undefined ? { ...readOptionFile(file, options), ...parsed.values } : parsed.values;
        return await spec.run({ values: values as Values<O>, positionals: parsed.positionals, tokens: parsed.tokens ?? [] });
      } catch (e) {
        throw e instanceof UsageError ? hinted(e) : e;
      }
    },
  };
}

/** Parses a non-negative integer (decimal or 0x hex) that fits a double exactly. */
export function parseCount(s: string | undefined, what: string): number {
  if (s === undefined || !/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw new UsageError(`${what} must be a non-negative integer, got '${s ?? ''}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} '${s}' is beyond 2^53`);
  return n;
}
