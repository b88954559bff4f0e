// Text for WordCount tests and the count an independent reader expects, so a job's output can be
// compared byte for byte with Hadoop's own.

/** `n` words of `vocab` (some with a number) from a fixed LCG seeded with `seed`, separated by spaces,
 * a newline about every 11th word and, with `tabs`, a tab about every 13th. */
export function words(n: number, seed: number, vocab: readonly string[], opts: { tabs?: boolean } = {}): string {
  let x = seed;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out.push(vocab[x % vocab.length]! + (x % 7 === 0 ? String(x % 100) : ''));
    out.push(x % 11 === 0 ? '\n' : opts.tabs && x % 13 === 0 ? '\t' : ' ');
  }
  return out.join('') + '\n';
}

/** Word count the way Hadoop's WordCount tokenizes (java.util.StringTokenizer), in Text byte order:
 * the bytes of its part-r-00000. */
export function wordCount(data: Buffer): string {
  const counts = new Map<string, number>();
  for (const w of data.toString('latin1').split(/[ \t\n\r\f]+/)) if (w) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts]
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')))
    .map(([w, c]) => `${w}\t${c}\n`)
    .join('');
}
