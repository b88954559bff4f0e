// QMP framing: one JSON object per line (the server ends each message with "\r\n"). The reader keeps
// at most `maxLineBytes` of an unterminated line, so a peer cannot make us buffer without bound.

import { LineTooLongError, ServerParseError } from './errors.js';

export type JsonObject = { [key: string]: unknown };

export class LineReader {
  private parts: Buffer[] = [];
  private pending = 0;
  private failed = false;

  constructor(private readonly maxLineBytes: number) {}

  /** Feed bytes; returns the complete lines (without the terminator). Throws LineTooLongError once. */
  push(chunk: Buffer): string[] {
    if (this.failed) return [];
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      if (this.pending + piece.length > this.maxLineBytes) return this.fail();
      this.parts.push(piece);
      lines.push(Buffer.concat(this.parts).toString('utf8'));
      this.parts = [];
      this.pending = 0;
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.pending + rest.length > this.maxLineBytes) return this.fail();
    if (rest.length > 0) {
      // Copy: the socket's chunk may be a slice of a larger pooled buffer we must not pin.
      this.parts.push(Buffer.from(rest));
      this.pending += rest.length;
    }
    return lines;
  }

  /** Bytes of an unterminated line currently held. */
  get buffered(): number {
    return this.pending;
  }

  private fail(): never {
    this.failed = true;
    this.parts = [];
    this.pending = 0;
    throw new LineTooLongError(this.maxLineBytes);
  }
}

/** Parse one line into a JSON object; blank lines yield null. */
export function parseMessage(line: string): JsonObject | null {
  const text = line.trim();
  if (text === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ServerParseError('invalid JSON from server', excerpt(text));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServerParseError('server message is not a JSON object', excerpt(text));
  }
  return value as JsonObject;
}

function excerpt(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
