import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ScenarioFigures, figuresDir } from './figures.js';

/** Starts this run's figures afresh. */
export function resetFigures(): void {
  rmSync(figuresDir(), { recursive: true, force: true });
}

/**
 * Sums the scenarios' figures into test-artifacts/fault-report.md (the source of the table
 * in docs/RELIABILITY.md) and returns it, or nothing when no fault scenario ran.
 */
export function writeFaultReport(): string | undefined {
  const dir = figuresDir();
  if (!existsSync(dir)) return undefined;
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').trim().split('\n').filter(Boolean))
    .map((line) => JSON.parse(line) as ScenarioFigures);
  rmSync(dir, { recursive: true, force: true });
  if (all.length === 0) return undefined;
  const sum = (pick: (f: ScenarioFigures) => number) => all.reduce((n, f) => n + pick(f), 0);
  const lines = [
    `Fault suite, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${all.length} scenarios`,
    '',
    '| scenario | rounds | faults injected | workers killed | runs | changes lost | wrongful deprovisions | notes |',
    '|---|---|---|---|---|---|---|---|',
    ...all
      .sort((a, b) => a.scenario.localeCompare(b.scenario))
      .map((f) => `| ${f.scenario} | ${f.rounds} | ${f.faults} | ${f.kills ?? 0} | ${f.runs} | ${f.changesLost} | ${f.wrongfulDeprovisions} | ${f.note ?? ''} |`),
    `| **total** | ${sum((f) => f.rounds)} | ${sum((f) => f.faults)} | ${sum((f) => f.kills ?? 0)} | ${sum((f) => f.runs)} | ${sum((f) => f.changesLost)} | ${sum((f) => f.wrongfulDeprovisions)} | |`,
  ];
  const report = `${lines.join('\n')}\n`;
  writeFileSync(path.resolve('test-artifacts/fault-report.md'), report);
  return report;
}
