import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../../../src/fs/journal.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-journal-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('Journal', () => {
  it('replays what was appended', () => {
    const file = path.join(dir, 'j');
    const { journal } = Journal.open(file);
    journal.append(Buffer.from('one'));
    journal.append(Buffer.alloc(100_000, 7));
    journal.close();
    const { journal: j2, replay } = Journal.open(file);
    expect(replay.records.map((r) => r.length)).toEqual([3, 100_000]);
    expect(replay.records[0]!.toString()).toBe('one');
    expect(replay.droppedBytes).toBe(0);
    j2.close();
  });

  it('drops a torn tail (cut at every byte) and appends cleanly after it', () => {
    const file = path.join(dir, 'j');
    const { journal } = Journal.open(file);
    journal.append(Buffer.from('first'));
    const good = journal.size;
    journal.append(Buffer.from('second record'));
    journal.close();
    const full = fs.readFileSync(file);
    for (let cut = good; cut < full.length; cut++) {
      fs.writeFileSync(file, full.subarray(0, cut));
      const { journal: j, replay } = Journal.open(file);
      expect(replay.records.map(String)).toEqual(['first']);
      expect(replay.droppedBytes).toBe(cut - good);
      j.append(Buffer.from('third'));
      j.close();
      const { journal: j3, replay: r3 } = Journal.open(file);
      expect(r3.records.map(String)).toEqual(['first', 'third']);
      j3.close();
    }
  });

  it('stops at a corrupted record (CRC) and at an absurd length field', () => {
    const file = path.join(dir, 'j');
    const { journal } = Journal.open(file);
    journal.append(Buffer.from('aaaa'));
    journal.append(Buffer.from('bbbb'));
    journal.close();
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    let o = Journal.open(file);
    expect(o.replay.records.map(String)).toEqual(['aaaa']);
    o.journal.close();
    const b2 = fs.readFileSync(file);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(0xfffffff0, 0);
    fs.writeFileSync(file, Buffer.concat([b2, tail]));
    o = Journal.open(file);
    expect(o.replay.records.map(String)).toEqual(['aaaa']);
    o.journal.close();
  });

  it('a bad record with valid records after it is damage, not a torn tail: reported with a copy, nothing cut', () => {
    const file = path.join(dir, 'j');
    const { journal } = Journal.open(file);
    for (const r of ['first', 'second', 'third', 'fourth']) journal.append(Buffer.from(r));
    journal.close();
    const bytes = fs.readFileSync(file);
    const at = bytes.indexOf('second');
    bytes[at] = bytes[at]! ^ 0x20;
    fs.writeFileSync(file, bytes);
    const { journal: j, replay } = Journal.open(file);
    j.close();
    expect(replay.records.map(String)).toEqual(['first']);
    expect(replay.damage).toMatchObject({ offset: at - 8, reason: 'CRC mismatch' });
    expect(replay.damage!.after.map(String)).toEqual(['third', 'fourth']);
    expect(fs.readFileSync(replay.damage!.copy).equals(bytes)).toBe(true);
    expect(fs.statSync(replay.damage!.copy).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true); // left for the store to decide
    // a damaged length field: the same
    const b2 = Buffer.from(bytes);
    b2[at] = b2[at]! ^ 0x20;
    b2.writeUInt32LE(0x7fffffff, at - 8);
    fs.writeFileSync(file, b2);
    const o = Journal.open(file);
    o.journal.close();
    expect(o.replay.damage?.reason).toMatch(/length/);
    expect(o.replay.damage!.after.map(String)).toEqual(['third', 'fourth']);
  });

  it('refuses a file that is not a journal', () => {
    const file = path.join(dir, 'j');
    fs.writeFileSync(file, 'hello world, not a journal');
    expect(() => Journal.open(file)).toThrow(/not a LiveMR journal/);
  });

  it('rewrites atomically', () => {
    const file = path.join(dir, 'j');
    const { journal } = Journal.open(file);
    for (let i = 0; i < 10; i++) journal.append(Buffer.from(`r${i}`));
    journal.rewrite([Buffer.from('x'), Buffer.from('y')]);
    journal.append(Buffer.from('z'));
    journal.close();
    const { journal: j, replay } = Journal.open(file);
    expect(replay.records.map(String)).toEqual(['x', 'y', 'z']);
    expect(fs.existsSync(`${file}.tmp`)).toBe(false);
    j.close();
  });
});
