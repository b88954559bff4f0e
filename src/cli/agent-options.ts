// The options every command that talks to a running agent shares (status, biglog).
export const AGENT = {
  state: { type: 'string', arg: 'DIR', help: "the agent's state directory (default $LIVEMR_STATE or /var/lib/livemr)" },
  config: { type: 'string', arg: 'FILE', help: "the agent's configuration; its stateDir is used" },
} as const;
