// `livemr qmp QMP_SOCKET COMMAND [JSON_ARGS]`: send one command, print its return value as JSON.

import { ExecuteError, QmpClient } from '../qmp/index.js';
import { command, parseCount, UsageError } from './args.js';

export const commands = [command({
  name: 'qmp',
  summary: 'send one QMP command, print its return value as JSON',
  args: 'QMP_SOCKET COMMAND [JSON_ARGS]',
  positionals: [2, 3],
  options: { timeout: { type: 'string', arg: 'MS', help: 'command timeout in milliseconds (default 30000)' } },
  notes: 'QMP_SOCKET: unix socket path, unix:PATH or tcp:HOST:PORT; JSON_ARGS: a JSON object',
  async run({ values, positionals }) {
    const timeoutMs = values.timeout === undefined ? 30_000 : parseCount(values.timeout, '--timeout');
    const [socket, name, json] = positionals as [string, string, string | undefined];
    let commandArgs: Record<string, unknown> | undefined;
    if (json !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(json);
      } catch {
        throw new UsageError(`JSON_ARGS is not valid JSON: ${json}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError('JSON_ARGS must be a JSON object');
      commandArgs = parsed as Record<string, unknown>;
    }
    const client = await QmpClient.connect(socket, { commandTimeoutMs: timeoutMs });
    try {
      const result = await client.execute(name, commandArgs);
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof ExecuteError)) throw err;
      process.stderr.write(`livemr qmp: ${err.errorClass}: ${err.desc}\n`);
      return 1;
    } finally {
      await client.close();
    }
  },
})];
