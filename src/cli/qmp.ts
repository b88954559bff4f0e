// `livemr qmp QMP_SOCKET COMMAND [JSON_ARGS]`: send one command, print its return value as JSON.

import { QmpClient } from '../qmp/protocol/client.js';
import { ExecuteError } from '../qmp/protocol/errors.js';
import { UsageError } from './main.js';

const USAGE = 'usage: livemr qmp [--timeout MS] QMP_SOCKET COMMAND [JSON_ARGS]';

export async function run(argv: string[]): Promise<number> {
  const args = [...argv];
  let timeoutMs = 30_000;
  if (args[0] === '-h' || args[0] === '--help') {
    process.stdout.write(`${USAGE}\n  QMP_SOCKET: unix socket path, unix:PATH or tcp:HOST:PORT\n`);
    return 0;
  }
  if (args[0] === '--timeout') {
    timeoutMs = Number(args[1]);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new UsageError(`bad --timeout '${args[1]}'\n${USAGE}`);
    args.splice(0, 2);
  }
  const [socket, command, json, ...extra] = args;
  if (!socket || !command || extra.length > 0) throw new UsageError(USAGE);
  let commandArgs: Record<string, unknown> | undefined;
  if (json !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new UsageError(`JSON_ARGS is not valid JSON: ${json}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError('JSON_ARGS must be a JSON object');
    }
    commandArgs = parsed as Record<string, unknown>;
  }
  const client = await QmpClient.connect(socket, { commandTimeoutMs: timeoutMs });
  try {
    const result = await client.execute(command, commandArgs);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ExecuteError)) throw err;
    process.stderr.write(`livemr qmp: ${err.errorClass}: ${err.desc}\n`);
    return 1;
  } finally {
    await client.close();
  }
}
