// The real machine behind doctor's Probe.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readFileSync } from 'node:fs';
import { loadNative, addonPath } from '../fs/index.js';
import { LibvirtClient } from '../libvirt/index.js';
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
  async libvirt(uri) {
    // the real handshake (auth, CONNECT_OPEN) and one call, not just a socket that accepts
    const c = await LibvirtClient.connect({ uri, connectTimeoutMs: 5000, keepaliveIntervalMs: 0 });
    try {
      const v = await c.libVersion();
      return `libvirt ${Math.floor(v / 1e6)}.${Math.floor(v / 1e3) % 1000}.${v % 1000} answers at ${c.socketPath}`;
    } finally {
      await c.close();
    }
  },
  loadAddon() {
    loadNative();
    return addonPath();
  },
  uid: process.getuid?.() ?? 0,
};
