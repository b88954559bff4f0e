// Typed errors of the QMP protocol layer. Every failure a caller can see is one of these, so callers
// branch on the class (or its code), never on message text. Modelled on the error split of QEMU's qemu.qmp.
import { LiveMrError } from '../../errors/index.js';

type QmpErrorCode =
  | 'QMP_ERROR' | 'QMP_CONNECT' | 'QMP_GREETING' | 'QMP_NEGOTIATION' | 'QMP_EXECUTE' | 'QMP_TIMEOUT' | 'QMP_INTERRUPTED'
  | 'QMP_STATE' | 'QMP_DISCONNECTED' | 'QMP_PROTOCOL' | 'QMP_EVENT_OVERFLOW' | 'QMP_UNEXPECTED_REPLY' | 'QMP_EVENT_TIMEOUT';

/** Base of every error raised by src/qmp. */
export class QmpError extends LiveMrError {
  override name = 'QmpError';
  readonly code: QmpErrorCode = 'QMP_ERROR';
}

/** The socket could not be opened (ENOENT, ECONNREFUSED, ...). `errno` is the errno name. */
export class ConnectError extends QmpError {
  override name = 'ConnectError';
  override readonly code: QmpErrorCode = 'QMP_CONNECT';
  constructor(readonly address: string, readonly errno: string | undefined, options?: ErrorOptions) {
    super(`cannot connect to QMP at ${address}${errno ? ` (${errno})` : ''}`, options);
  }
}

/** The peer did not send a valid QMP greeting in time. */
export class GreetingError extends QmpError {
  override name = 'GreetingError';
  override readonly code: QmpErrorCode = 'QMP_GREETING';
}

/** `qmp_capabilities` was refused. */
export class NegotiationError extends QmpError {
  override name = 'NegotiationError';
  override readonly code: QmpErrorCode = 'QMP_NEGOTIATION';
  constructor(readonly errorClass: string, readonly desc: string) {
    super(`capabilities negotiation failed: ${errorClass}: ${desc}`);
  }
}

/** The server answered a command with `{"error": {"class", "desc"}}`. */
export class ExecuteError extends QmpError {
  override name = 'ExecuteError';
  override readonly code: QmpErrorCode = 'QMP_EXECUTE';
  constructor(readonly command: string, readonly errorClass: string, readonly desc: string) {
    super(`${command}: ${errorClass}: ${desc}`);
  }
}

/** No reply within the command's timeout. A late reply is discarded; the connection stays up. */
export class CommandTimeoutError extends QmpError {
  override name = 'CommandTimeoutError';
  override readonly code: QmpErrorCode = 'QMP_TIMEOUT';
  constructor(readonly command: string, readonly timeoutMs: number) {
    super(`${command}: no reply within ${timeoutMs} ms`);
  }
}

/** The connection ended while the command was in flight; `cause` says why. */
export class ExecInterruptedError extends QmpError {
  override name = 'ExecInterruptedError';
  override readonly code: QmpErrorCode = 'QMP_INTERRUPTED';
  constructor(readonly command: string, override readonly cause: QmpError) {
    super(`${command}: interrupted: ${cause.message}`, { cause });
  }
}

/** The client is not in a state to do this (not connected yet, or already closed). */
export class StateError extends QmpError {
  override name = 'StateError';
  override readonly code: QmpErrorCode = 'QMP_STATE';
}

/** The peer closed the connection, or the socket failed. */
export class DisconnectedError extends QmpError {
  override name = 'DisconnectedError';
  override readonly code: QmpErrorCode = 'QMP_DISCONNECTED';
}

/** The peer broke the protocol; the connection is dropped because the stream cannot be trusted. */
export class ProtocolError extends QmpError {
  override name = 'ProtocolError';
  override readonly code: QmpErrorCode = 'QMP_PROTOCOL';
}

/** A line that is not a JSON object. */
export class ServerParseError extends ProtocolError {
  override name = 'ServerParseError';
  constructor(message: string, readonly excerpt: string) {
    super(`${message}: ${JSON.stringify(excerpt)}`);
  }
}

/** A line longer than the client's bound (no newline within `limit` bytes). */
export class LineTooLongError extends ProtocolError {
  override name = 'LineTooLongError';
  constructor(readonly limit: number) {
    super(`server sent a line longer than ${limit} bytes`);
  }
}

/** A well-formed JSON object that is not a valid QMP message here (unknown id, wrong shape). */
export class UnexpectedMessageError extends ProtocolError {
  override name = 'UnexpectedMessageError';
}

/** An event listener's queue overflowed because its consumer fell behind; events were lost. */
export class EventOverflowError extends QmpError {
  override name = 'EventOverflowError';
  override readonly code: QmpErrorCode = 'QMP_EVENT_OVERFLOW';
  constructor(readonly limit: number) {
    super(`event queue overflowed (${limit} events pending): events were lost`);
  }
}

/** A command succeeded but its return value does not have the shape the typed helper expects. */
export class UnexpectedReplyError extends QmpError {
  override name = 'UnexpectedReplyError';
  override readonly code: QmpErrorCode = 'QMP_UNEXPECTED_REPLY';
  constructor(readonly command: string, what: string) {
    super(`${command}: unexpected reply: ${what}`);
  }
}

/** An awaited event did not arrive in time. */
export class EventTimeoutError extends QmpError {
  override name = 'EventTimeoutError';
  override readonly code: QmpErrorCode = 'QMP_EVENT_TIMEOUT';
  constructor(readonly what: string, readonly timeoutMs: number) {
    super(`no ${what} within ${timeoutMs} ms`);
  }
}
