/** The console's page frame and escaper, shared by its pages. */

/** Text made safe for HTML. Everything a page shows goes through it. */
export function h(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --held: #9a6700; --muted: #6e7781; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; gap: 1.5rem; align-items: baseline; padding: .8rem 1.5rem; border-bottom: 1px solid #8884; }
header a { text-decoration: none; } main { padding: 1rem 1.5rem; max-width: 80rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; } th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #8883; vertical-align: top; }
th { font-weight: 600; font-size: .85rem; color: var(--muted); }
.status { font-weight: 600; } .succeeded { color: var(--ok); } .failed { color: var(--bad); } .held { color: var(--held); } .queued, .running { color: var(--muted); }
.delivered { color: var(--ok); } .retrying { color: var(--held); } fieldset { border: 1px solid #8884; margin: .5rem 0; } fieldset label { display: inline-block; margin-right: .8rem; }
.error { color: var(--bad); } .muted { color: var(--muted); } form.inline { display: inline; }
button { font: inherit; padding: .25rem .8rem; cursor: pointer; } .banner { padding: .6rem 1rem; border-radius: 6px; background: #9a670022; margin: 1rem 0; }
svg text { font-size: 11px; fill: currentColor; }`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(title)} · dirsync</title><style>${STYLE}</style></head><body>
<header><strong><a href="/admin">dirsync</a></strong><nav><a href="/admin">Integrations</a> · <a href="/admin/endpoints">Event endpoints</a> · <a href="/admin/queues">Queue</a></nav></header>
<main><h1>${h(title)}</h1>${body}</main></body></html>`;
}

/** An ISO time as the console shows it: "2026-11-30 03:12:56" (UTC). */
export function when(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}
