// `npm run demo`: LiveMR end to end on this machine. Boots two real guests under QEMU, starts the
// host agent (QMP + channel hot-plug + image mapper + FUSE mount), appends log lines inside a guest
// while the host `tail -f`s the composed file and prints each line's lag, joins the second guest's
// log into a BigLog, and stops everything cleanly.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostAgent } from '../src/host/agent.js';
import { parseConfig } from '../src/host/config.js';
import { createLogger } from '../src/host/log.js';
import { ensureGuestImage } from '../vm-images/build.js';
import { bootGuest, type GuestVm } from '../test/harness/vm.js';
import { selfCheck } from '../test/harness/selfcheck.js';

const say = (s: string) => process.stdout.write(`${s}\n`);
const LOG = '/mnt/data/app.log';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, fn: () => boolean, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(() => { try { return fn(); } catch { return false; } })()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function main(): Promise<number> {
  say('LiveMR demo — files inside running VMs, read on the host with no copy\n');
  say('1. guest image (Debian cloud kernel + busybox + this host\'s node + the LiveMR guest helper)');
  const img = await ensureGuestImage();
  say(`   ${img.dir}`);
  const dir = mkdtempSync(join(tmpdir(), 'livemr-demo-'));
  const vms: GuestVm[] = [];
  let agent: HostAgent | undefined;
  let tail: ReturnType<typeof spawn> | undefined;
  const agentLog: string[] = [];
  const cleanup = async () => {
    tail?.kill();
    await agent?.stop().catch(() => {});
    agent = undefined;
    for (const vm of vms.splice(0)) await vm.shutdown();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    say('2. booting two guests under QEMU (web1 with the LiveMR channel, web2 without: the agent hot-plugs it)');
    vms.push(await bootGuest({ name: 'web1' }));
    vms.push(await bootGuest({ name: 'web2', channel: false }));
    const [web1, web2] = vms as [GuestVm, GuestVm];
    say(`   web1 ready in ${web1.bootMs} ms, web2 in ${web2.bootMs} ms (${web1.accel.toUpperCase()})`);
    const check = await selfCheck(web1, web1.disks[1]!, 1 << 20);
    say(`   testbed self-check on the partitioned disk: ${check.equal ? 'bytes match' : 'MISMATCH'}`);

    say(`3. in each guest the owner creates ${LOG} and consents (xattr user.livemr.share)`);
    for (const [vm, name] of [[web1, 'web1'], [web2, 'web2']] as const) {
      await vm.sh(`echo "${name}: service started" > ${LOG} && chown alice ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG}`);
    }

    say('4. starting the host agent (QMP → block graph → qcow2 mapper; channel → extents → FUSE)');
    const cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [
        { name: 'web1', qmp: web1.qmpSocket, channel: web1.channelSocket, share: [LOG] },
        { name: 'web2', qmp: web2.qmpSocket, share: [LOG] },
      ],
    });
    agent = await HostAgent.start(cfg, createLogger({ sink: (l) => agentLog.push(l) }));
    const f1 = join(cfg.mountpoint, 'livemr_web1_mnt_data_app.log');
    const f2 = join(cfg.mountpoint, 'livemr_web2_mnt_data_app.log');
    await waitFor('web1 log on the mount', () => statSync(f1).size > 0);
    await waitFor('web2 log on the mount', () => statSync(f2).size > 0);
    say(`   mounted ${cfg.mountpoint}:`);
    for (const c of agent.store.list()) say(`     livemr_${c.name}  ${c.size} bytes  ← ${c.sources.map((s) => s.split('/').pop()).join(', ')}`);

    say(`5. appending lines inside web1 while the host runs \`tail -F -s 0.02 ${f1.split('/').pop()}\``);
    say('   (one line every ~0.4 s; lag = from the host asking the guest to append, over the test control');
    say('    channel, to tail printing it — so it includes starting a shell in the TCG guest)');
    const seen = new Map<number, number>();
    tail = spawn('tail', ['-n', '+1', '-F', '-s', '0.02', f1], { stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    tail.stdout!.setEncoding('utf8');
    tail.stdout!.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /request (\d+)/.exec(line);
        if (m) seen.set(Number(m[1]), Date.now());
      }
    });
    const lags: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const t0 = Date.now();
      await web1.sh(`echo "web1: request ${i} served in $((RANDOM % 90 + 10)) ms" >> ${LOG}`);
      await waitFor(`line ${i} on the host`, () => seen.has(i), 10_000);
      const lag = seen.get(i)! - t0;
      lags.push(lag);
      say(`   host tail: "web1: request ${i} ..."  lag ${lag} ms`);
      await sleep(400);
    }
    lags.sort((a, b) => a - b);
    say(`   median lag ${lags[Math.floor(lags.length / 2)]} ms, max ${lags[lags.length - 1]} ms`);
    const guest = await web1.sh(`cat ${LOG}`);
    say(`   host file == guest file: ${readFileSync(f1, 'utf8') === guest ? 'yes, byte for byte' : 'NO'}`);
    tail.kill();
    tail = undefined;

    say('6. a BigLog: web1\'s log, then web2\'s log joins; both keep growing into it');
    agent.bigLogs.join('biglog', [{ vm: 'web1', path: LOG }]);
    agent.bigLogs.join('biglog', [{ vm: 'web2', path: LOG }]);
    await web2.sh(`echo "web2: request 1 served in 12 ms" >> ${LOG}`);
    const big = join(cfg.mountpoint, 'livemr_biglog');
    await waitFor('web2 growth in the BigLog', () => readFileSync(big, 'utf8').includes('web2: request 1'));
    const lines = readFileSync(big, 'utf8').trimEnd().split('\n');
    say(`   livemr_biglog: ${lines.length} lines from 2 VMs; last three:`);
    for (const l of lines.slice(-3)) say(`     ${l}`);
    const s = agent.status();
    say(`   status: ${s.vms.map((v) => `${v.name} channel ${v.channel}, ${v.files.length} file(s), ${v.pendingRanges} pending`).join('; ')}`);

    say('7. stopping: agent (unmount), guests (poweroff)');
    await cleanup();
    say('\ndemo OK');
    return 0;
  } catch (e) {
    say(`demo failed: ${(e as Error).message}`);
    if (agentLog.length) say(agentLog.slice(-20).join('\n'));
    await cleanup();
    return 1;
  }
}

process.exitCode = await main();
