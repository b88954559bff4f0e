// LiveMR's libvirt client: libvirt's RPC protocol spoken directly over the daemon's unix socket
// (XDR, packet framing, keepalive), only the procedures LiveMR uses, typed errors, events on one
// connection and a session that reconnects across libvirtd restarts. See docs/libvirt.md.
export * from './errors.js';
export * from './protocol.js';
export * from './codec.js';
export * from './framing.js';
export * from './xdr.js';
export * from './uri.js';
export * from './client.js';
export * from './session.js';
export * from './domain-xml.js';
