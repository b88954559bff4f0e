// An fsync'd append-only record log, the persistence of the composition store (docs/fs.md).
//
//   file   = "LMRJRNL1" record*
//   record = u32le payload length | u32le crc32(payload) | payload
//
// A record counts once its bytes and the fdatasync that follows are done. On open, replay stops at
// the first record that is incomplete or fails its CRC. A record that runs past the end of the file
// with nothing valid after it is a write torn by a crash: the file is cut back to the last good
// record. A complete record that fails its CRC, or any valid record after the bad one, is damage
// (disk, a stray write), not a crash — the records it
// lost may have been removals or shrinks, so replay reports it as `damage` (with a copy of the file
// as it was) and leaves the decision to the store, which then trusts none of it (docs/fs.md).
// rewrite() replaces the whole log atomically (tmp, fsync, rename, fsync of the directory).

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { syncDir, writeFileAtomic } from '../durable/index.js';
import { FsError } from './errors.js';

export const MAGIC = Buffer.from('LMRJRNL1');
const HEADER = 8;
/** Upper bound of one record: a length field beyond it is corruption, not an allocation request. */
export const MAX_RECORD = 1 << 30;

export interface JournalDamage {
  /** file offset of the first bad record */
  offset: number;
  reason: string;
  /** the damaged journal, copied before anything was changed */
  copy: string;
  /** valid records found after the damage (they cannot be applied: what lies between is lost) */
  after: Buffer[];
}

export interface ReplayResult {
  /** the valid records before the first bad one */
  records: Buffer[];
  /** bytes dropped from a torn tail */
  droppedBytes: number;
  /** set when the journal is damaged in the middle; then nothing was cut */
  damage?: JournalDamage;
}

/** One step of reading a log: what lies at `pos` in a file of `size` bytes. */
export type RecordRead =
  | { kind: 'record'; payload: Buffer; next: number }
  /** no header fits: the end of the log */
  | { kind: 'end' }
  /** the length runs past the end (a write in progress, or torn by a crash); `tooLong`: beyond MAX_RECORD */
  | { kind: 'partial'; length: number; tooLong: boolean }
  /** a complete record whose CRC does not match: damage */
  | { kind: 'bad' };

/** Reads the record at `pos`. The one record reader of the store's replay and of followers. */
export function readRecord(fd: number, pos: number, size: number): RecordRead {
  if (pos + HEADER > size) return { kind: 'end' };
  const hdr = Buffer.alloc(HEADER);
  fs.readSync(fd, hdr, 0, HEADER, pos);
  const len = hdr.readUInt32LE(0);
  if (len > MAX_RECORD || pos + HEADER + len > size) return { kind: 'partial', length: len, tooLong: len > MAX_RECORD };
  const payload = Buffer.allocUnsafe(len);
  if (fs.readSync(fd, payload, 0, len, pos + HEADER) !== len || crc32(payload) !== hdr.readUInt32LE(4)) return { kind: 'bad' };
  return { kind: 'record', payload, next: pos + HEADER + len };
}

/** Checks the magic at the start of a log; false if the file is something else. */
export function hasMagic(fd: number): boolean {
  const head = Buffer.alloc(MAGIC.length);
  return fs.readSync(fd, head, 0, head.length, 0) === head.length && head.equals(MAGIC);
}

export class Journal {
  private constructor(
    readonly file: string,
    private fd: number,
    private bytes: number,
  ) {}

  /** Opens (creating if needed) the log and returns its valid records. */
  static open(file: string): { journal: Journal; replay: ReplayResult } {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (e) {
      throw new FsError('EJOURNAL', `cannot open journal ${file}: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size === 0) {
        fs.writeSync(fd, MAGIC, 0, MAGIC.length, 0);
        fs.fdatasyncSync(fd);
        syncDir(path.dirname(file));
        return { journal: new Journal(file, fd, MAGIC.length), replay: { records: [], droppedBytes: 0 } };
      }
      if (!hasMagic(fd)) throw new FsError('EJOURNAL', `${file} is not a LiveMR journal (bad magic)`);
      const records: Buffer[] = [];
      let pos = MAGIC.length;
      let reason = '';
      for (let r = readRecord(fd, pos, size); ; r = readRecord(fd, pos, size)) {
        if (r.kind === 'end') break;
        if (r.kind === 'partial') { reason = `length ${r.length} runs past the end`; break; }
        if (r.kind === 'bad') { reason = 'CRC mismatch'; break; }
        records.push(r.payload);
        pos = r.next;
      }
      const after = pos < size ? validRecordsAfter(fd, pos + 1, size) : [];
      // a torn append runs past the end of the file; a complete record that fails its CRC, or valid
      // records after the bad one, mean damage
      if (reason === 'CRC mismatch' || after.length > 0) {
        const copy = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
        fs.copyFileSync(file, copy, fs.constants.COPYFILE_EXCL);
        fs.chmodSync(copy, 0o600);
        const cfd = fs.openSync(copy, 'r');
        try { fs.fsyncSync(cfd); } finally { fs.closeSync(cfd); }
        syncDir(path.dirname(file));
        return { journal: new Journal(file, fd, size), replay: { records, droppedBytes: 0, damage: { offset: pos, reason, copy, after } } };
      }
      if (pos < size) {
        fs.ftruncateSync(fd, pos);
        fs.fdatasyncSync(fd);
      }
      return { journal: new Journal(file, fd, pos), replay: { records, droppedBytes: size - pos } };
    } catch (e) {
      fs.closeSync(fd);
      throw e instanceof FsError ? e : new FsError('EJOURNAL', `cannot read journal ${file}: ${(e as Error).message}`);
    }
  }

  get size(): number {
    return this.bytes;
  }

  /** Appends one record durably. */
  append(payload: Buffer): void {
    if (payload.length > MAX_RECORD) throw new FsError('EJOURNAL', `record of ${payload.length} bytes is too large`);
    const hdr = Buffer.alloc(HEADER);
    hdr.writeUInt32LE(payload.length, 0);
    hdr.writeUInt32LE(crc32(payload), 4);
    try {
      writeAll(this.fd, hdr, this.bytes);
      writeAll(this.fd, payload, this.bytes + HEADER);
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      // cut back a partial record so the next append does not land behind garbage
      try {
        fs.ftruncateSync(this.fd, this.bytes);
      } catch {
        /* replay drops the torn tail anyway */
      }
      throw new FsError('EJOURNAL', `cannot append to ${this.file}: ${(e as Error).message}`);
    }
    this.bytes += HEADER + payload.length;
  }

  /** Atomically replaces the log by exactly these records. */
  rewrite(payloads: Iterable<Buffer>): void {
    const chunks: Buffer[] = [MAGIC];
    let pos = MAGIC.length;
    for (const p of payloads) {
      const hdr = Buffer.alloc(HEADER);
      hdr.writeUInt32LE(p.length, 0);
      hdr.writeUInt32LE(crc32(p), 4);
      chunks.push(hdr, p);
      pos += HEADER + p.length;
    }
    try {
      writeFileAtomic(this.file, chunks, { mode: 0o600 });
    } catch (e) {
      throw new FsError('EJOURNAL', `cannot compact ${this.file}: ${(e as Error).message}`);
    }
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR);
    this.bytes = pos;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * The valid records of [from, size): scanning byte by byte for a header whose length fits and whose
 * CRC matches its payload, then following the chain from there. A torn tail has none (a CRC32 of
 * random bytes matches by chance with probability 2^-32 per candidate; a zero length is no record).
 */
function validRecordsAfter(fd: number, from: number, size: number): Buffer[] {
  if (from + HEADER > size) return [];
  const rest = Buffer.allocUnsafe(size - from);
  fs.readSync(fd, rest, 0, rest.length, from);
  for (let i = 0; i + HEADER <= rest.length; i++) {
    const found: Buffer[] = [];
    let p = i;
    while (p + HEADER <= rest.length) {
      const len = rest.readUInt32LE(p);
      if (len === 0 || p + HEADER + len > rest.length) break;
      const payload = rest.subarray(p + HEADER, p + HEADER + len);
      if (crc32(payload) !== rest.readUInt32LE(p + 4)) break;
      found.push(Buffer.from(payload));
      p += HEADER + len;
    }
    if (found.length) return found;
  }
  return [];
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done);
}
