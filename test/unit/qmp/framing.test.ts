import { describe, expect, it } from 'vitest';
import { LineReader, parseMessage } from '../../../src/qmp/protocol/framing.js';
import { LineTooLongError, ServerParseError } from '../../../src/qmp/protocol/errors.js';

describe('LineReader', () => {
  it('splits lines across and within chunks', () => {
    const r = new LineReader(1024);
    expect(r.push(Buffer.from('{"a":'))).toEqual([]);
    expect(r.push(Buffer.from('1}\r\n{"b":2}\n{"c"'))).toEqual(['{"a":1}\r', '{"b":2}']);
    expect(r.buffered).toBe(4);
    expect(r.push(Buffer.from(':3}\n'))).toEqual(['{"c":3}']);
    expect(r.buffered).toBe(0);
  });

  it('keeps multi-byte characters split across chunks intact', () => {
    const r = new LineReader(1024);
    const bytes = Buffer.from('{"s":"é€"}\n');
    expect(r.push(bytes.subarray(0, 8))).toEqual([]);
    expect(r.push(bytes.subarray(8))).toEqual(['{"s":"é€"}']);
  });

  it('fails once an unterminated line passes the bound, and holds nothing after', () => {
    const r = new LineReader(10);
    expect(r.push(Buffer.from('12345'))).toEqual([]);
    expect(() => r.push(Buffer.from('678901'))).toThrow(LineTooLongError);
    expect(r.buffered).toBe(0);
    expect(r.push(Buffer.from('ok\n'))).toEqual([]);
  });

  it('fails on a complete line that is too long', () => {
    const r = new LineReader(4);
    expect(() => r.push(Buffer.from('123456\n'))).toThrow(LineTooLongError);
  });
});

describe('parseMessage', () => {
  it('parses objects and skips blank lines', () => {
    expect(parseMessage('{"return": {}}\r')).toEqual({ return: {} });
    expect(parseMessage('  \r')).toBeNull();
  });
  it('rejects garbage and non-objects with ServerParseError', () => {
    expect(() => parseMessage('garbage')).toThrow(ServerParseError);
    expect(() => parseMessage('{"return": ')).toThrow(ServerParseError);
    expect(() => parseMessage('[1,2]')).toThrow(ServerParseError);
    expect(() => parseMessage('42')).toThrow(ServerParseError);
  });
});
