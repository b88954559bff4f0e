// `livemr-guest`: the helper daemon and the owner's consent commands, bundled into one file that runs
// on stock Node in the guest (scripts/build-native-guest.sh). See docs/guest.md.
//   livemr-guest daemon [--batch-ms T] [--batch-bytes S] [--no-gap-send] [--port NAME] [--spool DIR] [--state FILE]
//   livemr-guest requests            pending host requests for the caller's files (root: everyone's)
//   livemr-guest grant <id|path>     consent: set user.livemr.share on the file, answer the request
//   livemr-guest deny <id|path>      answer the request without consent
//   livemr-guest share|unshare <path>   set / remove the consent xattr directly
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConsentSpool, DEFAULT_SPOOL, grantConsent, revokeConsent } from './consent.js';
import { DEFAULT_HELPER_OPTIONS, GuestHelper, type HelperOptions } from './helper.js';
import { LiveMrError } from '../errors/index.js';

class Usage extends LiveMrError {
  readonly code = 'GUEST_USAGE';
}

function parseDaemonArgs(args: string[]): HelperOptions {
  const o: HelperOptions = { ...DEFAULT_HELPER_OPTIONS };
  const num = (v: string | undefined, name: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Usage(`${name} needs a non-negative number`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    switch (a) {
      case '--batch-ms': o.batchMs = num(args[++i], a); break;
      case '--batch-bytes': o.batchBytes = num(args[++i], a); break;
      case '--no-gap-send': o.sendOnGap = false; break;
      case '--no-disk-flush': o.diskFlush = false; break;
      case '--settle-ms': o.settleMs = num(args[++i], a); break;
      case '--rescan-ms': o.rescanMs = Math.max(50, num(args[++i], a)); break;
      case '--port': o.portName = args[++i] ?? ''; break;
      case '--spool': o.spoolDir = args[++i] ?? ''; break;
      case '--state': o.stateFile = args[++i] ?? ''; break;
      default: throw new Usage(`unknown option ${a}`);
    }
  }
  return o;
}

async function daemon(args: string[]): Promise<number> {
  const helper = new GuestHelper(parseDaemonArgs(args));
  const stop = () => { helper.stop(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await helper.start();
  return new Promise<number>(() => {}); // runs until signalled
}

function requests(): number {
  const uid = process.getuid?.() ?? 0;
  const list = new ConsentSpool(process.env.LIVEMR_SPOOL ?? DEFAULT_SPOOL).list(uid === 0 ? undefined : uid);
  if (!list.length) { console.log('no pending requests'); return 0; }
  for (const r of list) console.log(`${r.id}  uid ${r.uid}  ${r.requested}  ${r.requester}  ${r.path}`);
  return 0;
}

function answer(what: string | undefined, grant: boolean): number {
  if (!what) throw new Usage(`${grant ? 'grant' : 'deny'} needs a request id or a path`);
  const spool = new ConsentSpool(process.env.LIVEMR_SPOOL ?? DEFAULT_SPOOL);
  const uid = process.getuid?.() ?? 0;
  const req = spool.find(what, uid === 0 ? undefined : uid) ?? spool.find(resolve(what), uid === 0 ? undefined : uid);
  if (!req) { console.error(`livemr-guest: no pending request ${what}`); return 1; }
  if (grant) {
    const st = statSync(req.path);
    if (st.ino !== req.inode) { console.error(`livemr-guest: ${req.path} is not the file that was requested any more; not granted`); return 1; }
    grantConsent(req.path);
  }
  spool.remove(req.id, req.uid);
  console.log(`${grant ? 'granted' : 'denied'}: ${req.path}`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'daemon': return await daemon(rest);
      case 'requests': return requests();
      case 'grant': return answer(rest[0], true);
      case 'deny': return answer(rest[0], false);
      case 'share': if (!rest[0]) throw new Usage('share needs a path'); grantConsent(resolve(rest[0])); return 0;
      case 'unshare': if (!rest[0]) throw new Usage('unshare needs a path'); revokeConsent(resolve(rest[0])); return 0;
      default: throw new Usage(cmd ? `unknown command ${cmd}` : 'no command');
    }
  } catch (e) {
    if (e instanceof Usage) {
      console.error(`livemr-guest: ${e.message}\nusage: livemr-guest daemon [--batch-ms T] [--batch-bytes S] [--no-gap-send] | requests | grant <id|path> | deny <id|path> | share <path> | unshare <path>`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    console.error(`livemr-guest: ${err.code ? `${err.code}: ` : ''}${err.message}`);
    return 1;
  }
}

void main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
