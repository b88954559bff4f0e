// A small Prometheus registry (text exposition format 0.0.4): gauges and counters with labels,
// rendered on demand. Hand-written because it is ~60 lines and the agent needs nothing more.

type Labels = Record<string, string>;

interface Family { help: string; type: 'gauge' | 'counter'; values: Map<string, { labels: Labels; value: number }> }

const key = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class Metrics {
  private families = new Map<string, Family>();

  private family(name: string, type: 'gauge' | 'counter', help: string): Family {
    let f = this.families.get(name);
    if (!f) this.families.set(name, (f = { help, type, values: new Map() }));
    return f;
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, 'gauge', help).values.set(key(labels), { labels, value });
  }

  inc(name: string, help: string, labels: Labels, by = 1): void {
    const f = this.family(name, 'counter', help);
    const k = key(labels);
    const cur = f.values.get(k);
    f.values.set(k, { labels, value: (cur?.value ?? 0) + by });
  }

  /** Drops every series of `name` whose labels include `match` (e.g. a VM that went away). */
  drop(match: Labels): void {
    for (const f of this.families.values()) {
      for (const [k, v] of f.values) {
        if (Object.entries(match).every(([mk, mv]) => v.labels[mk] === mv)) f.values.delete(k);
      }
    }
  }

  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const { labels, value } of f.values.values()) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 'NaN'}`);
      }
    }
    return out.join('\n') + '\n';
  }
}
