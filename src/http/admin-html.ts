/** The console's page frame and escaper, shared by its pages. */

/** Text made safe for HTML. Everything a page shows goes through it. */
export function h(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}



export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(title)} · dirsync</title><link rel="stylesheet" href="/admin/assets/admin.css"></head><body>
<header><strong><a href="/admin">dirsync</a></strong><nav><a href="/admin">Integrations</a> · <a href="/admin/held">Held plans</a> · <a href="/admin/endpoints">Event endpoints</a> · <a href="/admin/queues">Queue</a></nav>
<form method="post" action="/admin/logout" class="inline signout"><button type="submit">Sign out</button></form></header>
<main><h1>${h(title)}</h1>${body}</main></body></html>`;
}

/** An ISO time as the console shows it: "2026-11-30 03:12:56" (UTC). */
export function when(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}
