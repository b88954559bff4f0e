// Light checks of command replies: the typed helpers trust field types only after these pass, so a
// QEMU that answers differently than expected yields UnexpectedReplyError, not undefined behaviour.

import { UnexpectedReplyError } from '../protocol/errors.js';

export type Obj = Record<string, unknown>;

export function asObject(command: string, value: unknown, what = 'reply'): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UnexpectedReplyError(command, `${what} is not an object`);
  }
  return value as Obj;
}

export function asArray(command: string, value: unknown, what = 'reply'): Obj[] {
  if (!Array.isArray(value)) throw new UnexpectedReplyError(command, `${what} is not an array`);
  return value.map((v, i) => asObject(command, v, `${what}[${i}]`));
}

export function str(command: string, o: Obj, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new UnexpectedReplyError(command, `'${key}' is not a string`);
  return v;
}

export function num(command: string, o: Obj, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UnexpectedReplyError(command, `'${key}' is not a number`);
  return v;
}

export function optStr(o: Obj, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}
