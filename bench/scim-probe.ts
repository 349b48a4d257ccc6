/**
 * Preloaded into the `dirsync start` that bench/scim.ts spawns (`node --import`), so the bench
 * can see inside the process without changing it: once a second it appends one JSON line to
 * $DIRSYNC_BENCH_PROBE_FILE with the event loop's delay over that second (p50, p99, max, in
 * ms) and the CPU time the process used (user + system, ms). A run's synchronous work (plan,
 * snapshot building) shows as event-loop delay that every SCIM request in flight waits out.
 */
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.DIRSYNC_BENCH_PROBE_FILE;
if (file) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let cpu = process.cpuUsage();
  const timer = setInterval(() => {
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const ms = (ns: number) => Math.round(ns / 1e5) / 10;
    appendFileSync(
      file,
      `${JSON.stringify({ t: Date.now(), eldP50: ms(histogram.percentile(50)), eldP99: ms(histogram.percentile(99)), eldMax: ms(histogram.max), cpuMs: Math.round((used.user + used.system) / 1000) })}\n`,
    );
    histogram.reset();
  }, 1_000);
  timer.unref();
}
