// The zero-copy OPEN body: sendfile(2) from the disk images straight to the client's TCP socket
// through the native addon (src/fs/native/livemr_sendfile.c), as an HDFS DataNode sends blocks with
// transferTo; no byte passes through a JavaScript buffer. The JS-buffer path (reader.ts) stays the
// fallback: no addon, a TLS socket, a pipelined response not yet on the socket, more than
// MAX_ZERO_COPY responses at once (each in-flight sendfile holds a libuv pool thread while the
// socket is full), or a client that takes no bytes for STALL_MS (it finishes on the JS path, which
// waits for 'drain' without holding a thread). docs/hdfs.md, "The read path".

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { loadNative, ZERO_SOURCE, type NativeAddon, type SendToken } from '../fs/index.js';
import { segmentAt, sendRange, shortSource, sourceHandles } from './reader.js';
import type { ComposedFile } from './source.js';

/** bytes per native call: the segment is looked up again between calls (growth, holes filled) */
const CALL_MAX = 16 << 20;
const ZERO_SIZE = 1 << 20;
export const MAX_ZERO_COPY = 2;
const STALL_MS = 10_000;
/** the client went away: stop quietly, as the JS path does when the response closes */
const GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN', 'ESHUTDOWN']);

type ZeroCopy = Required<Pick<NativeAddon, 'sendFile' | 'zeroFd' | 'sendToken' | 'sendCancel'>>;
let addon: ZeroCopy | null | undefined;
let zeros = -1;

/** The addon's sendfile binding, or undefined when the addon is not built or predates it. */
export function zeroCopyAddon(): ZeroCopy | undefined {
  if (addon === undefined) {
    try {
      const a = loadNative();
      addon =
        typeof a.sendFile === 'function' && typeof a.zeroFd === 'function' && typeof a.sendCancel === 'function' && typeof a.sendToken === 'function'
          ? (a as ZeroCopy)
          : null;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}

/** The kernel fd under a plain TCP socket, or -1 (TLS, pipes, a socket libuv does not expose). */
function socketFd(sock: Socket): number {
  if (sock instanceof TLSSocket) return -1;
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** Counters for tests and the benchmark: responses (and bytes) sent each way. */
export const sendStats = { zeroCopy: 0, zeroCopyBytes: 0, buffered: 0, inFlight: 0 };

/**
 * Writes composed bytes [offset, offset+length) of `file` as the body of `res`, whose headers are
 * set (writeHead) but not sent. Zero-copy when it can, else (or for the rest after a stall) the
 * JS-buffer path. Throws ShortSourceError like sendRange; the caller destroys the response then.
 */
export async function sendBody(file: ComposedFile, offset: number, length: number, res: ServerResponse, zeroCopy = true): Promise<void> {
  const zc = zeroCopy ? zeroCopyAddon() : undefined;
  const sock = res.socket;
  const fd = zc && sock && (sock as unknown as { _httpMessage?: unknown })._httpMessage === res ? socketFd(sock) : -1;
  if (!zc || !sock || fd < 0 || sendStats.inFlight >= MAX_ZERO_COPY) {
    sendStats.buffered++;
    return sendRange(file, offset, length, res);
  }
  sendStats.inFlight++;
  let sent = 0;
  try {
    sendStats.zeroCopy++;
    // the headers must be in the kernel before the body goes out beside Node's stream
    res.flushHeaders();
    await new Promise<void>((resolve, reject) => sock.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
    // Node sees no activity on the socket while the native call sends: its idle timer would cut a
    // slow but moving client. So the call watches for stalls itself: a client that takes no byte
    // for the write timeout (the server's socket timeout) is cut as the JS path would cut it; one
    // that stalls for STALL_MS under a longer timeout goes on on the JS path, under the timer again.
    const timeout = sock.timeout ?? 0;
    if (timeout) sock.setTimeout(0);
    let r;
    try {
      r = await sendFileRange(zc, file, offset, length, sock, timeout && timeout < STALL_MS ? timeout : STALL_MS);
    } finally {
      if (timeout && !sock.destroyed) sock.setTimeout(timeout);
    }
    sent = r.sent;
    if (r.stalled && timeout && timeout <= STALL_MS) sock.destroy();
  } finally {
    sendStats.zeroCopyBytes += sent;
    sendStats.inFlight--;
  }
  if (sent < length && !sock.destroyed) await sendRange(file, offset + sent, length - sent, res);
}

/**
 * sendfile's loop over the segments; returns the bytes sent (fewer: stalled for `stallMs`, or the socket closed).
 * A shrink of the file (a removal is a shrink to 0) that cuts into the native call in flight cancels
 * it before the shrink's caller goes on (SegmentList.onShrink, sendCancel): no byte of the removed
 * range is sent after the removal was applied. The loop then goes on below the new size, or ends.
 */
async function sendFileRange(zc: ZeroCopy, file: ComposedFile, offset: number, length: number, sock: Socket, stallMs: number): Promise<{ sent: number; stalled: boolean }> {
  const handles = sourceHandles();
  const end = offset + length;
  let pos = offset;
  /** the call in flight: its token and where its range ends */
  let call: { token: SendToken; end: number } | undefined;
  let stalled = false;
  const unsubscribe = file.segments.onShrink((size) => {
    let handed = pos;
    if (call && size < call.end) handed += zc.sendCancel(call.token);
    // bytes of the removed range already in the kernel's socket queue still refer to the page
    // cache, so they would go out with whatever the reused blocks hold by then: reset the
    // connection, which drops the queue, instead of letting it drain
    if (size < handed) sock.resetAndDestroy();
  });
  try {
    while (pos < end && !sock.destroyed) {
      const first = segmentAt(file, pos);
      const fh = first.source === ZERO_SOURCE ? undefined : await handles.get(file.sources[first.source]!);
      // looked up again after the await (the file may have shrunk meanwhile); from here to the
      // native call nothing awaits, so the call starts on the mapping as it is now
      const seg = segmentAt(file, pos);
      if (seg.source !== first.source) continue;
      const inFd = fh ? fh.fd : zeroFd(zc);
      let n = Math.min(CALL_MAX, end - pos, seg.at + seg.length - pos);
      let inOff = 0;
      if (seg.source === ZERO_SOURCE) n = Math.min(n, ZERO_SIZE);
      else inOff = seg.offset + (pos - seg.at);
      // the socket's fd is read again in the same tick as sendFile dup()s it: after any await the
      // socket may have closed and its number been reused by a new connection
      const fd = socketFd(sock);
      if (fd < 0 || sock.destroyed) break;
      const token = zc.sendToken();
      call = { token, end: pos + n };
      let r;
      try {
        r = await zc.sendFile(fd, inFd, inOff, n, stallMs, token);
      } catch (e) {
        if (GONE.has((e as NodeJS.ErrnoException).code ?? '')) {
          sock.destroy();
          break;
        }
        throw e;
      } finally {
        call = undefined;
      }
      pos += r.sent;
      if (r.cancelled) continue; // the file shrank into this call: look the rest up again (or the socket is gone)
      if (r.eof) throw shortSource(file.sources[seg.source], file);
      if (r.stalled) { stalled = true; break; }
    }
  } finally {
    unsubscribe();
    await handles.close();
  }
  return { sent: pos - offset, stalled };
}

function zeroFd(zc: ZeroCopy): number {
  if (zeros < 0) zeros = zc.zeroFd(ZERO_SIZE);
  return zeros;
}
