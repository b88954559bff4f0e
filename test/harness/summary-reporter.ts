// Prints one plain closing line, "N passed, N failed, N skipped", that CI tooling reads regardless of
// the test runner's own formatting.
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  async onTestRunEnd(modules: ReadonlyArray<TestModule>): Promise<void> {
    let passed = 0, failed = 0, skipped = 0;
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else skipped++;
      }
      // a file that failed outside its tests (import, beforeAll) fails even if every test was skipped
      if (m.state() === 'failed' && ![...m.children.allTests()].some((t) => t.result().state === 'failed')) failed++;
    }
    await new Promise((r) => setTimeout(r, 50)); // after the default reporter's summary
    process.stdout.write(`\nlivemr: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
