// Typed errors of the libvirt client. Callers branch on the class or on `code` (stable strings),
// never on message text. A server-side failure is a LibvirtRpcError carrying libvirt's own
// virErrorNumber (`virCode`, e.g. 42 = VIR_ERR_NO_DOMAIN) and its symbolic name.
import { LiveMrError } from '../errors/index.js';
import { errorCodeName, VIR_ERR } from './protocol.js';

export type LibvirtErrorCode =
  | 'LIBVIRT_CONNECT' | 'LIBVIRT_AUTH' | 'LIBVIRT_RPC' | 'LIBVIRT_PROTOCOL' | 'LIBVIRT_TIMEOUT'
  | 'LIBVIRT_DISCONNECTED' | 'LIBVIRT_STATE' | 'LIBVIRT_KEEPALIVE' | 'LIBVIRT_XML' | 'LIBVIRT_URI';

/** Base of every error raised by src/libvirt. */
export class LibvirtError extends LiveMrError {
  override name = 'LibvirtError';
  constructor(override readonly code: LibvirtErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The socket could not be opened (ENOENT: libvirtd not running; EACCES: no permission). */
export class LibvirtConnectError extends LibvirtError {
  override name = 'LibvirtConnectError';
  constructor(readonly socketPath: string, readonly errno: string | undefined, options?: ErrorOptions) {
    super('LIBVIRT_CONNECT', `cannot connect to libvirt at ${socketPath}${errno ? ` (${errno})` : ''}`, options);
  }
}

/** The daemon asks for an authentication scheme this client does not speak (SASL, polkit). */
export class LibvirtAuthError extends LibvirtError {
  override name = 'LibvirtAuthError';
  constructor(message: string) {
    super('LIBVIRT_AUTH', message);
  }
}

/** The daemon answered a call with an error (libvirt's virError). */
export class LibvirtRpcError extends LibvirtError {
  override name = 'LibvirtRpcError';
  /** VIR_ERR_* name of virCode, e.g. 'VIR_ERR_NO_DOMAIN' */
  readonly virCodeName: string;
  constructor(
    readonly procedure: string,
    /** libvirt's virErrorNumber */
    readonly virCode: number,
    /** libvirt's virErrorDomain (which subsystem raised it) */
    readonly virDomain: number,
    readonly serverMessage: string,
  ) {
    super('LIBVIRT_RPC', `${procedure}: ${serverMessage || errorCodeName(virCode)} (${errorCodeName(virCode)})`);
    this.virCodeName = errorCodeName(virCode);
  }

  /** The object named in the call does not exist (domain, device, disk). */
  get isNotFound(): boolean {
    return this.virCode === VIR_ERR.NO_DOMAIN || this.virCode === VIR_ERR.DEVICE_MISSING;
  }
}

/** The peer broke the protocol (bad frame, bad XDR, unknown serial); the connection is dropped. */
export class LibvirtProtocolError extends LibvirtError {
  override name = 'LibvirtProtocolError';
  constructor(message: string) {
    super('LIBVIRT_PROTOCOL', message);
  }
}

/** No reply within the call's timeout. A late reply is discarded; the connection stays up. */
export class LibvirtTimeoutError extends LibvirtError {
  override name = 'LibvirtTimeoutError';
  constructor(readonly procedure: string, readonly timeoutMs: number) {
    super('LIBVIRT_TIMEOUT', `${procedure}: no reply within ${timeoutMs} ms`);
  }
}

/** The connection ended (daemon stopped or restarted, socket error) while a call was in flight. */
export class LibvirtDisconnectedError extends LibvirtError {
  override name = 'LibvirtDisconnectedError';
  constructor(message: string, options?: ErrorOptions) {
    super('LIBVIRT_DISCONNECTED', message, options);
  }
}

/** The daemon stopped answering keepalive pings: the connection is considered dead. */
export class LibvirtKeepaliveError extends LibvirtDisconnectedError {
  override name = 'LibvirtKeepaliveError';
}

/** The client is not in a state to do this (closed, or not open yet). */
export class LibvirtStateError extends LibvirtError {
  override name = 'LibvirtStateError';
  constructor(message: string) {
    super('LIBVIRT_STATE', message);
  }
}

/** A domain XML that does not have the shape LiveMR relies on. */
export class LibvirtXmlError extends LibvirtError {
  override name = 'LibvirtXmlError';
  constructor(message: string) {
    super('LIBVIRT_XML', message);
  }
}

/** A connection URI this client cannot map to a local socket. */
export class LibvirtUriError extends LibvirtError {
  override name = 'LibvirtUriError';
  constructor(message: string) {
    super('LIBVIRT_URI', message);
  }
}
