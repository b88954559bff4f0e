// Maps a libvirt connection URI to the local unix socket to dial and the name to send in
// CONNECT_OPEN, the way libvirt's remote driver does for local URIs: `qemu:///system` goes to the
// system daemon's socket (virtqemud's on hosts with modular daemons, else the monolithic
// libvirtd's), `?socket=PATH` overrides it. Remote transports (ssh, tls, tcp) are out of scope:
// LiveMR runs on the hypervisor host itself.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LibvirtUriError } from './errors.js';

export interface ResolvedUri {
  /** the socket to connect to */
  socketPath: string;
  /** the URI the daemon opens (transport parameters removed) */
  name: string;
}

export interface ResolveOptions {
  /** run directory of the system daemons (default /run/libvirt) */
  runDir?: string;
  exists?: (p: string) => boolean;
}

export function resolveUri(uri: string, o: ResolveOptions = {}): ResolvedUri {
  const m = /^([a-z][a-z0-9]*)(?:\+([a-z]+))?:\/\/([^/?]*)(\/[^?]*)?(?:\?(.*))?$/i.exec(uri);
  if (!m) throw new LibvirtUriError(`'${uri}' is not a libvirt URI (expected e.g. qemu:///system)`);
  const [, driver, transport, host, path = '/', query] = m;
  if (host) throw new LibvirtUriError(`'${uri}' names a remote host; LiveMR only talks to the local daemon`);
  if (transport && transport !== 'unix') throw new LibvirtUriError(`'${uri}': transport '${transport}' is not supported (only unix)`);
  const params = new URLSearchParams(query ?? '');
  const explicit = params.get('socket');
  params.delete('socket');
  const rest = params.toString();
  const name = `${driver}://${path}${rest ? `?${rest}` : ''}`;
  if (explicit) return { socketPath: explicit, name };
  const exists = o.exists ?? existsSync;
  let dir: string;
  if (path === '/system') dir = o.runDir ?? '/run/libvirt';
  else if (path === '/session') {
    const xdg = process.env.XDG_RUNTIME_DIR;
    if (!xdg) throw new LibvirtUriError(`'${uri}': XDG_RUNTIME_DIR is not set; give ?socket=PATH`);
    dir = join(xdg, 'libvirt');
  } else throw new LibvirtUriError(`'${uri}': unknown path '${path}' (expected /system or /session); give ?socket=PATH`);
  const modular = join(dir, `virt${driver!.toLowerCase()}d-sock`);
  return { socketPath: exists(modular) ? modular : join(dir, 'libvirt-sock'), name };
}
