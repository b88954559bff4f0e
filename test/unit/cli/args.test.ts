import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { command, helpText, parseCount, readOptionFile, UsageError } from '../../../src/cli/args.js';
import { main } from '../../../src/cli/main.js';

const spec = {
  name: 'demo sub',
  summary: 'does a thing',
  args: 'FILE',
  positionals: 1,
  options: {
    json: { type: 'boolean', help: 'as JSON' },
    state: { type: 'string', arg: 'DIR', help: 'state directory' },
    seg: { type: 'string', multiple: true, arg: 'S', help: 'a piece' },
  },
} as const;

describe('one option table per command', () => {
  afterEach(() => vi.restoreAllMocks());

  it('parses with node:util parseArgs and keeps the order of repeated options', async () => {
    let seen: unknown;
    const cmd = command({ ...spec, run: async ({ values, positionals, tokens }) => {
      seen = { values, positionals, order: tokens.filter((t) => t.kind === 'option').map((t) => t.name) };
      return 0;
    } });
    expect(await cmd.invoke(['f', '--seg', 'a', '--json', '--seg=b', '--state', '/s'])).toBe(0);
    expect(seen).toEqual({ values: { seg: ['a', 'b'], json: true, state: '/s' }, positionals: ['f'], order: ['seg', 'json', 'seg', 'state'] });
  });

  it('turns unknown options, missing values and wrong positional counts into usage errors naming --help', async () => {
    const cmd = command({ ...spec, run: async () => 0 });
    for (const argv of [['f', '--nope'], ['f', '--state'], [], ['f', 'g']]) {
      const e = await cmd.invoke(argv).catch((x: unknown) => x);
      expect(e, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((e as Error).message).toContain("see 'livemr demo sub --help'");
    }
  });

  it('prints help from the same table, every option with its value name', async () => {
    const text = helpText(spec as never);
    expect(text).toMatch(/^usage: livemr demo sub \[OPTIONS\] FILE\n/);
    expect(text).toMatch(/--state DIR +state directory/);
    expect(text).toMatch(/--seg S +a piece \(repeatable\)/);
    expect(text).toMatch(/-h, --help/);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let ran = false;
    expect(await command({ ...spec, run: async () => { ran = true; return 0; } }).invoke(['--help'])).toBe(0);
    expect(ran).toBe(false);
    expect(out.mock.calls.map((c) => String(c[0])).join('')).toBe(text);
  });

  it('parses counts strictly', () => {
    expect(parseCount('0x10', 'N')).toBe(16);
    for (const s of ['-1', '1e3', '', undefined, '99999999999999999999']) expect(() => parseCount(s, 'N')).toThrow(UsageError);
  });
});

describe('livemr exit codes', () => {
  afterEach(() => vi.restoreAllMocks());
  const quiet = () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    return { out: () => out.mock.calls.join(''), err: () => err.mock.calls.join('') };
  };

  it('0 for --version, help and every command --help; 2 for usage errors', async () => {
    const io = quiet();
    expect(await main(['--version'])).toBe(0);
    expect(io.out()).toMatch(/^livemr \d+\.\d+\.\d+/);
    expect(await main(['help'])).toBe(0);
    const names = [...io.out().matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
    expect(names).toContain('doctor');
    for (const n of names) expect(await main([n, '--help']), n).toBe(0);
    expect(await main(['help', 'image', 'map'])).toBe(0);
    expect(await main([])).toBe(2);
    expect(await main(['nope'])).toBe(2);
    expect(await main(['image'])).toBe(2);
    expect(await main(['image', 'nope'])).toBe(2);
    expect(await main(['image', 'map', '--bogus', 'x'])).toBe(2);
    expect(io.err()).toMatch(/unknown command 'nope'/);
  });

  it('1 for a failure', async () => {
    const io = quiet();
    expect(await main(['image', 'map', '/nonexistent/disk.qcow2'])).toBe(1);
    expect(io.err()).toMatch(/^livemr image: \w+Error: /m);
  });
});

describe('--config FILE: option values as JSON', () => {
  const root = new URL('../../../systemd/examples/', import.meta.url);
  it('the packaged examples are valid for their commands', async () => {
    const { parseConfig } = await import('../../../src/host/config.js');
    expect(parseConfig(JSON.parse(fs.readFileSync(new URL('agent.json', root), 'utf8')))).toMatchObject({ mountpoint: '/srv/livemr', group: 'livemr' });
    const { parsePanelConfig } = await import('../../../src/panel/config.js');
    const panel = parsePanelConfig(JSON.parse(fs.readFileSync(new URL('panel.json', root), 'utf8')));
    expect(panel).toMatchObject({ agents: [{ socket: '/run/livemr/agent-api.sock' }], jobUser: 'livemr-job', stateDir: '/var/lib/livemr-panel' });
    expect(parseConfig(JSON.parse(fs.readFileSync(new URL('agent.json', root), 'utf8'))).apiSocket).toBe(panel.agents[0]!.socket);
    const { commands } = await import('../../../src/cli/hdfs.js');
    for (const [name, file] of [['hdfs serve', 'gateway.json'], ['hdfs aggregate', 'aggregator.json']] as const) {
      const text = commands.find((c) => c.name === name)!.help();
      for (const k of Object.keys(JSON.parse(fs.readFileSync(new URL(file, root), 'utf8')) as object)) expect(text, `${file}: ${k}`).toContain(`--${k} `);
    }
  });

  it('rejects unknown keys and wrong types; the command line wins', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-cfg-'));
    try {
      const opts = { state: { type: 'string', help: '' }, json: { type: 'boolean', help: '' }, seg: { type: 'string', multiple: true, help: '' } } as const;
      const f = path.join(dir, 'c.json');
      fs.writeFileSync(f, '{"state": "/a", "json": true, "seg": ["x"]}');
      expect(readOptionFile(f, opts)).toEqual({ state: '/a', json: true, seg: ['x'] });
      for (const bad of ['{"nope": 1}', '{"state": 1}', '{"seg": "x"}', '[]', '{']) {
        fs.writeFileSync(f, bad);
        expect(() => readOptionFile(f, opts), bad).toThrow(UsageError);
      }
      fs.writeFileSync(f, '{"state": "/from-file", "json": true}');
      let seen: unknown;
      const cmd = command({ name: 'x', summary: '', configFile: true, options: opts, run: async ({ values }) => { seen = values; return 0; } });
      await cmd.invoke(['--config', f, '--state', '/cli']);
      expect(seen).toMatchObject({ state: '/cli', json: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
