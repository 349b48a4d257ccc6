import { describe, expect, it } from 'vitest';
import { apiWording } from '../../src/http/api-wording.js';

describe('apiWording', () => {
  it('names CLI options as the API fields they are sent as', () => {
    expect(apiWording('--url must be https:// (set DIRSYNC_ALLOW_HTTP=true)')).toBe('url must be https:// (set DIRSYNC_ALLOW_HTTP=true)');
    expect(apiWording('give either --token or an Okta service app (--okta-client-id, --okta-private-key-file), not both')).toBe(
      'give either token or an Okta service app (oktaClientId, oktaPrivateKey), not both',
    );
    expect(apiWording('--types: x is not an event type')).toBe('types: x is not an event type');
  });

  it('keeps commands in backticks as they are', () => {
    expect(apiWording('failed; run `dirsync endpoint replay e1 --after 1.2` after --grace ends')).toBe('failed; run `dirsync endpoint replay e1 --after 1.2` after grace ends');
  });

  it('leaves text without options alone, dashes in words included', () => {
    expect(apiWording('a well-kept error -- with dashes')).toBe('a well-kept error -- with dashes');
  });
});
