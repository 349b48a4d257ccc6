import { describe, expect, it } from 'vitest';
import { MalformedWebhookError, readAuthentikNotification, readOktaDelivery } from '../../src/webhooks/events.js';
import { presentedSecret } from '../../src/webhooks/receive.js';
import { authentikDefaultBody, authentikMappedBody, oktaDelivery } from '../support/webhook-bodies.js';

describe('Okta event hook deliveries', () => {
  it.each([
    ['user.lifecycle.deactivate', true],
    ['user.lifecycle.suspend', true],
    ['user.account.update_profile', true],
    ['group.user_membership.remove', true],
    ['group.lifecycle.delete', true],
    ['user.session.start', false],
    ['user.authentication.sso', false],
  ])('%s is relevant: %s', (eventType, relevant) => {
    const body = oktaDelivery([{ eventType, uuid: 'e1' }]);
    expect(readOktaDelivery(body, null)).toEqual({ eventIds: ['e1'], eventTypes: [eventType], relevant });
  });

  it('ignores app assignments to another app than the integration\'s', () => {
    const body = (appId: string) =>
      oktaDelivery([{ eventType: 'application.user_membership.add', target: [{ id: '00uAnn', type: 'User' }, { id: appId, type: 'AppInstance' }] }]);
    expect(readOktaDelivery(body('0oaOurs'), '0oaOurs').relevant).toBe(true);
    expect(readOktaDelivery(body('0oaOther'), '0oaOurs').relevant).toBe(false);
    expect(readOktaDelivery(body('0oaOther'), null).relevant).toBe(true);
  });

  it('is relevant when any event of a batch is', () => {
    const body = oktaDelivery([{ eventType: 'user.session.start' }, { eventType: 'user.lifecycle.activate' }]);
    expect(readOktaDelivery(body, null)).toMatchObject({ relevant: true, eventTypes: ['user.session.start', 'user.lifecycle.activate'] });
  });

  it.each([[{}], [[]], [{ eventType: 'com.okta.event_hook', data: {} }], [{ eventType: 'com.okta.event_hook', data: { events: [{ eventType: 'x' }] } }]])(
    'rejects %j',
    (body) => {
      expect(() => readOktaDelivery(body, null)).toThrow(MalformedWebhookError);
    },
  );
});

describe('authentik notifications', () => {
  it('the default body says nothing about what changed, so it asks for a full run', () => {
    expect(readAuthentikNotification(authentikDefaultBody())).toEqual({ eventIds: [], eventTypes: ['notification'], relevant: true });
  });

  it.each([
    ['model_updated', 'authentik_core', 'user', true],
    ['model_deleted', 'authentik_core', 'group', true],
    ['model_created', 'authentik_policies', 'policybinding', true],
    ['model_updated', 'authentik_core', 'token', false],
  ])('%s of %s.%s is relevant: %s', (action, app, model_name, relevant) => {
    const body = authentikMappedBody(action, { app, model_name, pk: 1, name: 'x' });
    expect(readAuthentikNotification(body)).toEqual({ eventIds: [body.event_id], eventTypes: [`${action}:${app}.${model_name}`], relevant });
  });

  it('other actions are not relevant', () => {
    expect(readAuthentikNotification(authentikMappedBody('login')).relevant).toBe(false);
  });

  it('rejects a body that is not an object', () => {
    expect(() => readAuthentikNotification('hello')).toThrow(MalformedWebhookError);
    expect(() => readAuthentikNotification({ action: 3 })).toThrow(MalformedWebhookError);
  });
});

describe('webhook secrets', () => {
  it('reads a bare secret (Okta) and a bearer one (authentik)', () => {
    expect(presentedSecret('s3cret')).toBe('s3cret');
    expect(presentedSecret('Bearer s3cret')).toBe('s3cret');
    expect(presentedSecret('bearer   s3cret ')).toBe('s3cret');
    expect(presentedSecret(undefined)).toBeUndefined();
  });
});
