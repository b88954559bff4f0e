// The real machine behind doctor's Probe.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadNative, addonPath } from '../fs/index.js';
import type { Probe } from './checks.js';

export const hostProbe: Probe = {
  read(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  stat(path) {
    try {
      const s = lstatSync(path);
      return { isDir: s.isDirectory(), isCharDevice: s.isCharacterDevice(), mode: s.mode, uid: s.uid, gid: s.gid };
    } catch {
      return undefined;
    }
  },
  canReadWrite(path) {
    try {
      accessSync(path, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  },
  run(cmd, args) {
    const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
    return res.error ? undefined : { status: res.status, stdout: res.stdout, stderr: res.stderr };
  },
  connects(socketPath) {
    return new Promise((resolve) => {
      const c = connect(socketPath, () => {
        c.destroy();
        resolve(true);
      });
      c.setTimeout(3000, () => {
        c.destroy();
        resolve(false);
      });
      c.once('error', () => resolve(false));
    });
  },
  loadAddon() {
    loadNative();
    return addonPath();
  },
  uid: process.getuid?.() ?? 0,
};
