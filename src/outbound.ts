import type { Config } from './config.js';

/**
 * Where dirsync may send requests (IdP APIs, event endpoints), checked at every use and not
 * only when a URL is stored (SPEC "Operator safety"): a URL stored by a process that allowed
 * plain http must not be used by one that does not. Returns why a URL is refused, or
 * undefined when it may be used.
 */
export function outboundRefusal(url: string, config: Pick<Config, 'allowHttp'>): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${url.slice(0, 200)} is not a URL`;
  }
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol === 'http:') {
    return config.allowHttp ? undefined : `${parsed.origin} uses plain http://, which this process does not allow: use https://, or set DIRSYNC_ALLOW_HTTP=true for local development`;
  }
  return `${parsed.protocol} URLs are not allowed: use https://`;
}
