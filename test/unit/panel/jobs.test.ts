// The job runner's refusals that need no JVM: never as root (by name or by uid 0), no jobs when the
// account is missing, a bounded jar store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JarStore, JobError, JobRunner, lookupAccount } from '../../../src/panel/jobs.js';

const dir = mkdtempSync(join(tmpdir(), 'livemr-jobs-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const opts = (user: string, lookup?: typeof lookupAccount) => ({ dir: join(dir, 'jobs'), jarsDir: join(dir, 'jars'), workDir: join(dir, 'work'), user, ...(lookup ? { lookup } : {}) });

describe('JobRunner', () => {
  it('refuses root, by name and by any account with uid or gid 0', () => {
    expect(() => new JobRunner(opts('root'))).toThrow(JobError);
    expect(() => new JobRunner(opts('root'))).toThrow(/never run as root/);
    expect(() => new JobRunner(opts('toor', () => ({ name: 'toor', uid: 0, gid: 100 })))).toThrow(/uid 0/);
    expect(() => new JobRunner(opts('wheel', () => ({ name: 'wheel', uid: 1234, gid: 0 })))).toThrow(/gid 0/);
  });
  it('a missing account: the runner starts, submissions are refused saying why, nothing is queued', () => {
    const r = new JobRunner(opts('no-such-user-livemr'));
    expect(r.unavailable).toMatch(/does not exist.*useradd/);
    try {
      r.submit({ program: 'wordcount', args: [], inputs: [{ name: 'x', uri: 'webhdfs://h/x' }] });
      expect.unreachable();
    } catch (e) {
      expect((e as JobError).code).toBe('jobs-unavailable');
      expect((e as JobError).status).toBe(503);
    }
    expect(r.list()).toEqual([]);
  });
  it('looks accounts up through NSS', () => {
    expect(lookupAccount('root')).toEqual({ name: 'root', uid: 0, gid: 0 });
    expect(lookupAccount('no-such-user-livemr')).toBeUndefined();
  });
});

describe('JarStore', () => {
  it('holds at most max jars; the same jar again is not a new one; removing makes room', () => {
    const s = new JarStore(join(dir, 'store'), 2);
    s.add('0000000000000001', Buffer.from('a'));
    s.add('0000000000000002', Buffer.from('b'));
    s.add('0000000000000002', Buffer.from('b'));
    expect(() => s.add('0000000000000003', Buffer.from('c'))).toThrow(/at most 2 jars/);
    expect(s.list().map((j) => j.id)).toEqual(['0000000000000001', '0000000000000002']);
    expect(s.remove('0000000000000001')).toBe(true);
    expect(s.remove('0000000000000001')).toBe(false);
    expect(s.has('../../etc/passwd')).toBe(false);
    s.add('0000000000000003', Buffer.from('c'));
    expect(s.list()).toHaveLength(2);
  });
});
