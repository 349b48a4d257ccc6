// The console's only script: the runs chart (Chart.js, served from node_modules) and a
// running run's live progress (polls the run's progress JSON). Loaded from /admin/assets
// so the page's Content-Security-Policy can forbid inline scripts.
'use strict';

function drawRunsChart() {
  const canvas = document.getElementById('runs-chart');
  if (!canvas || typeof Chart === 'undefined') return;
  const runs = JSON.parse(canvas.dataset.runs);
  const labels = runs.map((r) => r.at);
  const marker = (test) => runs.map((r) => (test(r) ? 0 : null));
  new Chart(canvas, {
    data: {
      labels,
      datasets: [
        { type: 'bar', label: 'Changes', data: runs.map((r) => r.changes), backgroundColor: '#0969da88', yAxisID: 'changes', order: 2 },
        { type: 'line', label: 'Duration (s)', data: runs.map((r) => r.seconds), borderColor: '#8250df', backgroundColor: '#8250df', yAxisID: 'seconds', spanGaps: true, order: 1 },
        { type: 'line', label: 'Failed run', data: marker((r) => r.status === 'failed'), showLine: false, pointStyle: 'crossRot', pointRadius: 9, pointBorderWidth: 3, borderColor: '#cf222e', backgroundColor: '#cf222e', yAxisID: 'changes', order: 0 },
        { type: 'line', label: 'Held run (waiting or settled)', data: marker((r) => r.held), showLine: false, pointStyle: 'triangle', pointRadius: 8, borderColor: '#9a6700', backgroundColor: '#9a6700', yAxisID: 'changes', order: 0 },
      ],
    },
    options: {
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: { callbacks: { afterTitle: (items) => (items.length ? `status: ${runs[items[0].dataIndex].status}${runs[items[0].dataIndex].error ? ` (${runs[items[0].dataIndex].error})` : ''}` : '') } },
      },
      scales: {
        x: { title: { display: true, text: 'Run queued (UTC)' }, ticks: { maxRotation: 45, autoSkip: true } },
        changes: { type: 'linear', position: 'left', beginAtZero: true, title: { display: true, text: 'Changes' }, ticks: { precision: 0 } },
        seconds: { type: 'linear', position: 'right', beginAtZero: true, title: { display: true, text: 'Duration (s)' }, grid: { drawOnChartArea: false } },
      },
    },
  });
}

function describe(p) {
  const s = p.progress ?? {};
  if (p.status === 'queued') return 'Waiting for a worker…';
  if (s.planned !== undefined) return `Applying: ${s.applied ?? 0} of ${s.planned} changes`;
  if (s.reading) return `Reading the IdP: ${s.records ?? 0} records in ${s.requests ?? 0} requests`;
  return 'Running…';
}

// A live run's change log: re-fetched (its first page) whenever the run has logged more rows.
async function refreshChangeLog(logged) {
  const log = document.getElementById('change-log');
  if (!log || !log.dataset.changes || String(logged) === log.dataset.logged) return;
  if (new URLSearchParams(location.search).has('page')) return; // reading a later page: leave it be
  const response = await fetch(log.dataset.changes, { credentials: 'same-origin' });
  if (!response.ok) return;
  log.innerHTML = await response.text();
  log.dataset.logged = String(logged);
}

function followProgress() {
  const box = document.getElementById('progress');
  if (!box) return;
  const bar = document.getElementById('progress-bar');
  const text = document.getElementById('progress-text');
  const status = document.getElementById('run-status');
  const tick = async () => {
    try {
      const response = await fetch(box.dataset.live, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (response.ok) {
        const p = await response.json();
        if (p.status !== 'queued' && p.status !== 'running') return location.reload();
        status.textContent = p.status;
        status.className = `status ${p.status}`;
        text.textContent = describe(p);
        const s = p.progress ?? {};
        if (s.planned) {
          bar.max = s.planned;
          bar.value = s.applied ?? 0;
        } else bar.removeAttribute('value');
        box.dataset.updated = String(Date.now());
        refreshChangeLog(p.logged).catch(() => {});
      }
    } catch {
      // The server restarting: try again on the next tick.
    }
    setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener('DOMContentLoaded', () => {
  drawRunsChart();
  followProgress();
});
