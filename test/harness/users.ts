// Throwaway unprivileged accounts for tests that run something as a user other than root (the
// panel's job user, a local user probing the mount or the gateway). Created with useradd, removed
// with userdel (and its group) afterwards; the name is random so parallel runs do not collide.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  remove(): void;
}

export function createTestUser(prefix = 'lmrt'): TestUser {
  const name = `${prefix}${randomBytes(3).toString('hex')}`;
  execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', name]);
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  let gone = false;
  return {
    name, uid, gid,
    remove() {
      if (gone) return;
      gone = true;
      try { execFileSync('userdel', [name], { stdio: 'ignore' }); } catch { /* already gone */ }
      try { execFileSync('groupdel', [name], { stdio: 'ignore' }); } catch { /* removed with the user */ }
    },
  };
}
