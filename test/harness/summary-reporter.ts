// Prints one plain closing line, "N passed, N failed, N skipped", that CI tooling reads regardless of
// the test runner's own formatting, after one line per test skipped with a reason (`ctx.skip(reason)`:
// a missing host feature such as BFQ), so a skip is never silent.
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  async onTestRunEnd(modules: ReadonlyArray<TestModule>): Promise<void> {
    let passed = 0, failed = 0, skipped = 0;
    const reasons: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else {
          skipped++;
          const note = (t.result() as { note?: string }).note;
          if (note) reasons.push(`livemr: skipped ${t.fullName}: ${note}\n`);
        }
      }
      // a file that failed outside its tests (import, beforeAll) fails even if every test was skipped
      if (m.state() === 'failed' && ![...m.children.allTests()].some((t) => t.result().state === 'failed')) failed++;
    }
    await new Promise((r) => setTimeout(r, 50)); // after the default reporter's summary
    process.stdout.write(`\n${reasons.join('')}livemr: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
