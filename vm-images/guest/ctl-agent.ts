// Test control agent, run inside the guest on the virtio-serial port `org.livemr.ctl`.
// It lets the host harness run shell commands and move files, so tests drive the guest through a
// real device rather than a side door. Protocol (docs/testbed.md): one JSON object per line.
//   host → guest  {id, op: 'ping'|'sh'|'put'|'get', script?, stdin?, timeoutMs?, path?, data?, mode?}
//   guest → host  {id, ok: true, code?, stdout?, stderr?, data?} | {id, ok: false, error}
// Binary payloads are base64. Test-only: it runs anything as root, so it never ships in a real guest.
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';

const PORT_NAME = 'org.livemr.ctl';
const MAX_LINE = 512 * 1024 * 1024;
const MAX_OUTPUT = 256 * 1024 * 1024;

function findPort(): string | undefined {
  try {
    for (const p of readdirSync('/sys/class/virtio-ports')) {
      const name = readFileSync(`/sys/class/virtio-ports/${p}/name`, 'utf8').trim();
      if (name === PORT_NAME) return `/dev/${p}`;
    }
  } catch {
    /* class appears with the module */
  }
  return undefined;
}

async function waitForPort(): Promise<string> {
  for (;;) {
    const p = findPort();
    if (p) return p;
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Request = { id: number; op: string; script?: string; stdin?: string; timeoutMs?: number; path?: string; data?: string; mode?: number };

function runShell(req: Request): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', req.script ?? ''], { cwd: '/root', stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const take = (into: Buffer[]) => (b: Buffer) => {
      size += b.length;
      if (size <= MAX_OUTPUT) into.push(b);
    };
    child.stdout.on('data', take(out));
    child.stderr.on('data', take(err));
    const timer = req.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), req.timeoutMs) : undefined;
    child.on('error', (e) => resolve({ code: 127, stdout: '', stderr: Buffer.from(String(e)).toString('base64') }));
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15),
        stdout: Buffer.concat(out).toString('base64'),
        stderr: Buffer.concat(err).toString('base64'),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(req.stdin ? Buffer.from(req.stdin, 'base64') : undefined);
  });
}

async function handle(req: Request): Promise<Record<string, unknown>> {
  switch (req.op) {
    case 'ping':
      return { uptime: readFileSync('/proc/uptime', 'utf8').split(' ')[0] };
    case 'sh':
      return runShell(req);
    case 'put':
      writeFileSync(req.path!, Buffer.from(req.data ?? '', 'base64'), { mode: req.mode ?? 0o644 });
      return {};
    case 'get':
      return { data: readFileSync(req.path!).toString('base64') };
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

async function main(): Promise<void> {
  const path = await waitForPort();
  const fd = openSync(path, 'r+');
  const send = (obj: unknown) => {
    const buf = Buffer.from(JSON.stringify(obj) + '\n');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  };
  send({ event: 'ready' });
  let pending = '';
  const input = createReadStream('', { fd, autoClose: false, highWaterMark: 1 << 20 });
  input.setEncoding('utf8');
  input.on('data', (chunk: string | Buffer) => {
    pending += chunk;
    if (pending.length > MAX_LINE) pending = '';
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.trim()) continue;
      let req: Request;
      try {
        req = JSON.parse(line) as Request;
      } catch {
        send({ id: null, ok: false, error: 'bad json' });
        continue;
      }
      handle(req).then(
        (r) => send({ id: req.id, ok: true, ...r }),
        (e: Error) => send({ id: req.id, ok: false, error: e.message }),
      );
    }
  });
  input.on('error', (e) => {
    console.error(`ctl-agent: read error ${e.message}`);
    closeSync(fd);
    process.exit(1);
  });
}

main().catch((e) => {
  console.error('ctl-agent:', e);
  process.exit(1);
});
