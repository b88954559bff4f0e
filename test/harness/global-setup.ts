// Integration-test global setup/teardown: make sure the guest image exists before any worker boots
// a guest, and afterwards sweep VM directories whose owning test process is gone (killing their
// QEMU by the PID in qemu.pid, only if that process really is the QEMU of that directory).
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGuestImage } from '../../vm-images/build.js';
import { vmRoot } from './vm.js';

const alive = (pid: number) => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};

export function sweepOrphanVms(): number {
  const root = vmRoot();
  if (!existsSync(root)) return 0;
  let swept = 0;
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    let owner = 0;
    try { owner = Number(readFileSync(join(dir, 'owner'), 'utf8').trim()) || 0; } catch { /* half-made dir */ }
    if (owner && alive(owner)) continue;
    const pidFile = join(dir, 'qemu.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('qemu-system') && cmdline.includes(dir)) process.kill(pid, 'SIGKILL');
      } catch { /* already gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
    swept++;
  }
  return swept;
}

export async function setup(): Promise<void> {
  sweepOrphanVms();
  await ensureGuestImage();
}

export function teardown(): void {
  const n = sweepOrphanVms();
  if (n) console.error(`[harness] swept ${n} VM directories left by dead test processes`);
}
