// The guest protocol and its host end (docs/protocol.md, docs/guest.md): what the host side uses.
// The guest helper's own modules (tracker, consent, watch, native) are bundled into the guest
// binary from src/guest/cli.ts and are not imported by other folders.
export * from './protocol.js';
export { GuestSession, type GuestFile, type GuestSessionEvents, type GuestSessionOptions, type SessionLimits } from './host-session.js';
