// The WebHDFS gateway's bounds (issue 14 #9): `livemr hdfs serve` as its own process, clients as an
// attacker would write them — raw TCP connections that send an OPEN and never read, or send
// nothing at all. 300 stalled readers once held +852 MiB of the gateway's memory (a chunk queued
// for each socket and the next one read ahead); a stalled reader must hold little, be cut after the
// write timeout, an idle connection after the idle timeout, and connections past the cap are closed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../src/fs/store.js';
import { until } from '../harness/wait.js';
import { tempDir } from '../unit/qmp/support/qemu.js';

const MiB = 1 << 20;
const SIZE = 256 * MiB;
let dir = '';
const children: ChildProcess[] = [];
const sockets: net.Socket[] = [];

async function serve(...args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ['bin/livemr.mjs', 'hdfs', 'serve', '--state', path.join(dir, 'state'), '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proc);
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const port = await until(`the gateway to listen (${err})`, () => Number(/at http:\/\/127\.0\.0\.1:(\d+)\/webhdfs/.exec(err)?.[1] ?? 0), 30_000, 50);
  return { proc, port };
}

const rss = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** A raw connection that sends an OPEN and reads nothing (until told). */
function stalledOpen(port: number): { sock: net.Socket; closedEarly: Promise<boolean> } {
  const sock = net.connect(port, '127.0.0.1');
  sockets.push(sock);
  sock.pause();
  sock.on('error', () => {});
  sock.write('GET /webhdfs/v1/livemr_big?op=OPEN&user.name=alice HTTP/1.1\r\nHost: gw\r\n\r\n');
  const closedEarly = new Promise<boolean>((resolve) => { sock.once('close', () => resolve(true)); setTimeout(() => resolve(false), 1500).unref(); });
  return { sock, closedEarly };
}

/** Resumes a stalled reader; resolves with the bytes it got before the connection ended. */
function drain(sock: net.Socket, ms: number): Promise<{ bytes: number; ended: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    sock.on('data', (b: Buffer) => (bytes += b.length));
    const t = setTimeout(() => resolve({ bytes, ended: false }), ms);
    sock.once('close', () => { clearTimeout(t); resolve({ bytes, ended: true }); });
    sock.resume();
  });
}

beforeAll(() => {
  dir = tempDir('livemr-hdfs-bounds-');
  const src = path.join(dir, 'big.bin');
  fs.writeFileSync(src, Buffer.alloc(SIZE, 'x'));
  const store = CompositionStore.open(path.join(dir, 'state'));
  store.compose('big', [{ file: src, offset: 0, length: SIZE }]);
  store.close();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM'); // by the PID this test spawned
    await gone;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the gateway against stalled and idle clients', () => {
  it('300 stalled readers hold little of its memory (no read-ahead while a connection does not drain)', async () => {
    const { proc, port } = await serve();
    // warm up: code loaded, one response served
    const warm = await fetch(`http://127.0.0.1:${port}/webhdfs/v1/livemr_big?op=OPEN&user.name=alice&length=${4 * MiB}`);
    expect((await warm.arrayBuffer()).byteLength).toBe(4 * MiB);
    await new Promise((r) => setTimeout(r, 500));
    const before = rss(proc.pid!);
    const readers = Array.from({ length: 300 }, () => stalledOpen(port));
    expect((await Promise.all(readers.map((r) => r.closedEarly))).filter(Boolean)).toEqual([]);
    // every response started and blocked on its socket
    let last = 0;
    await until('the gateway\'s memory to settle', async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const now = rss(proc.pid!);
      const settled = Math.abs(now - last) < 4 * MiB;
      last = now;
      return settled;
    }, 30_000, 0);
    const grown = last - before;
    console.log(`gateway RSS ${(before / MiB).toFixed(0)} MiB → ${(last / MiB).toFixed(0)} MiB with 300 stalled readers (+${(grown / MiB).toFixed(0)} MiB, ${(grown / 300 / 1024).toFixed(0)} KiB each)`);
    // at most about half a MiB each (was ~2.8 MiB: one chunk queued, the next read ahead)
    expect(grown).toBeLessThan(300 * 512 * 1024);
    // they are still served: one reader resumed reads on
    const one = await drain(readers[0]!.sock, 2000);
    expect(one.bytes).toBeGreaterThan(4 * MiB);
    for (const r of readers) r.sock.destroy();
    proc.kill('SIGTERM');
  }, 90_000);

  it('cuts a reader that takes nothing for the write timeout, closes idle connections, and caps connections', async () => {
    const { proc, port } = await serve('--write-timeout-ms', '1500', '--idle-timeout-ms', '1000', '--max-connections', '20');
    // idle: connected, nothing sent
    const idle = net.connect(port, '127.0.0.1');
    sockets.push(idle);
    const t0 = Date.now();
    const idleClosed = new Promise<number>((resolve) => idle.once('close', () => resolve(Date.now() - t0)));
    idle.on('error', () => {});
    idle.resume();
    // stalled: the first ones take the native path, the rest the JS path; all must be cut
    const stalled = Array.from({ length: 19 }, () => stalledOpen(port)); // 20 with the idle one
    await new Promise((r) => setTimeout(r, 300));
    // one more is over the cap: closed as it is accepted, before any answer
    const over = net.connect(port, '127.0.0.1');
    sockets.push(over);
    over.on('error', () => {});
    let answer = '';
    over.on('data', (b: Buffer) => (answer += b.toString()));
    over.write('GET /webhdfs/v1/livemr_big?op=GETFILESTATUS&user.name=alice HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(await new Promise<boolean>((resolve) => { over.once('close', () => resolve(true)); setTimeout(() => resolve(false), 1500); })).toBe(true);
    expect(answer).toBe('');
    expect(await idleClosed).toBeLessThan(3000);
    // the stalled ones: after the write timeout the response is cut short (a resumed read ends)
    await new Promise((r) => setTimeout(r, 4000));
    const got = await Promise.all(stalled.map((s) => drain(s.sock, 5000)));
    expect(got.map((g) => g.ended)).toEqual(stalled.map(() => true));
    for (const g of got) expect(g.bytes).toBeLessThan(SIZE);
    // and the gateway serves again once they are gone
    const r = await fetch(`http://127.0.0.1:${port}/webhdfs/v1/livemr_big?op=OPEN&user.name=alice&length=1000`);
    expect([r.status, (await r.arrayBuffer()).byteLength]).toEqual([200, 1000]);
    expect(proc.exitCode).toBeNull();
  }, 60_000);
});
