// JSON-lines logging for the agent: one object per line on stderr, with time, level, component and
// message, plus structured fields. Machine-readable for log shippers, still greppable by hand.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string, fields?: Record<string, unknown>): Logger;
}

export function createLogger(
  opts: { level?: Level; sink?: (line: string) => void; component?: string; fields?: Record<string, unknown> } = {},
): Logger {
  const min = ORDER[opts.level ?? ((process.env.LIVEMR_LOG_LEVEL as Level | undefined) ?? 'info')] ?? 20;
  const sink = opts.sink ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = { component: opts.component ?? 'livemr', ...opts.fields };
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level, ...base, msg, ...fields };
    for (const [k, v] of Object.entries(rec)) if (v instanceof Error) rec[k] = { name: v.name, message: v.message };
    sink(JSON.stringify(rec));
  };
  return {
    debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'),
    child: (component, fields) => createLogger({ ...opts, component, fields: { ...opts.fields, ...fields } }),
  };
}
