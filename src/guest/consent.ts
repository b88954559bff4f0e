// Consent: a file is shared only while it carries the xattr `user.livemr.share`. A host request for a
// file without it becomes a pending request in a spool the file's owner can read:
//   /var/lib/livemr/requests/<uid>/<id>.json   (directory owned by <uid>, mode 0700; file root-owned, 0444)
// The owner answers by removing the request file: `livemr-guest grant` sets the xattr first, `deny`
// does not. The helper watches the spool and decides by the xattr alone. See docs/guest.md.
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { native } from './native.js';
import { writeFileAtomic } from '../durable/index.js';

export const CONSENT_XATTR = 'user.livemr.share';
export const DEFAULT_SPOOL = '/var/lib/livemr/requests';

export function hasConsent(path: string): boolean {
  try {
    return native().getxattr(path, CONSENT_XATTR) !== null;
  } catch {
    return false; // gone, or no permission: no consent
  }
}

export function grantConsent(path: string): void {
  native().setxattr(path, CONSENT_XATTR, Buffer.from('1'));
}

export function revokeConsent(path: string): void {
  native().removexattr(path, CONSENT_XATTR);
}

export interface PendingRequest {
  id: string;
  path: string;
  inode: number;
  uid: number;
  /** ISO time of the host's request */
  requested: string;
  /** who asked: the host id from its hello */
  requester: string;
}

export class ConsentSpool {
  constructor(readonly root = DEFAULT_SPOOL) {}

  private userDir(uid: number, gid: number): string {
    const dir = join(this.root, String(uid));
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, uid, gid);
    }
    return dir;
  }

  /** Records a request (one per path and inode); returns it. Runs as root in the helper. */
  add(path: string, requester: string): PendingRequest {
    const st = statSync(path);
    const existing = this.list().find((r) => r.path === path && r.inode === st.ino);
    if (existing) return existing;
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    const req: PendingRequest = { id: randomBytes(6).toString('hex'), path, inode: st.ino, uid: st.uid, requested: new Date().toISOString(), requester };
    const dir = this.userDir(st.uid, st.gid);
    // the directory belongs to the user: create exclusively (never through a planted symlink) and
    // touch the file by path no more after that, except to rename it within the directory
    const tmp = join(dir, `.${req.id}.tmp`);
    writeFileAtomic(join(dir, `${req.id}.json`), JSON.stringify(req, null, 2) + '\n', { tmp, mode: 0o444, exclusive: true });
    return req;
  }

  /** Requests visible to the caller (root sees all users' directories). Unreadable entries are skipped. */
  list(uid?: number): PendingRequest[] {
    const out: PendingRequest[] = [];
    let users: string[];
    try { users = readdirSync(this.root); } catch { return out; }
    for (const u of users) {
      if (!/^\d+$/.test(u) || (uid !== undefined && Number(u) !== uid)) continue;
      let files: string[];
      try { files = readdirSync(join(this.root, u)); } catch { continue; }
      for (const f of files) {
        if (!/^[0-9a-f]{12}\.json$/.test(f)) continue;
        try {
          const r = JSON.parse(readFileSync(join(this.root, u, f), 'utf8')) as PendingRequest;
          if (typeof r.path === 'string' && typeof r.inode === 'number' && r.id === f.slice(0, 12) && r.uid === Number(u)) out.push(r);
        } catch { /* not ours or half-written */ }
      }
    }
    return out;
  }

  find(idOrPath: string, uid?: number): PendingRequest | undefined {
    return this.list(uid).find((r) => r.id === idOrPath || r.path === idOrPath);
  }

  has(id: string, uid: number): boolean {
    return existsSync(join(this.root, String(uid), `${id}.json`));
  }

  /** Removes a request (the owner's answer, or the helper's cleanup). */
  remove(id: string, uid: number): void {
    rmSync(join(this.root, String(uid), `${id}.json`), { force: true });
  }
}
