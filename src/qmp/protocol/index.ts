// The QMP protocol layer: no command vocabulary here (see ../vocab for that).
export * from './errors.js';
export { QmpClient, parseAddress, formatAddress } from './client.js';
export type { QmpAddress, ClientOptions, ExecuteOptions, Greeting } from './client.js';
export { EventListener } from './events.js';
export type { QmpEvent, ListenerOptions } from './events.js';
export { LineReader, parseMessage } from './framing.js';
export { connectWithBackoff, backoffDelay, isRetryable } from './reconnect.js';
export type { BackoffOptions } from './reconnect.js';
