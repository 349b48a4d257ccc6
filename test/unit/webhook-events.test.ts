import { describe, expect, it } from 'vitest';
import { NO_SUBJECTS } from '../../src/connectors/connector.js';
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
    expect(readOktaDelivery(body, null)).toMatchObject({ eventIds: ['e1'], eventTypes: [eventType], relevant });
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
    expect(readAuthentikNotification(authentikDefaultBody())).toEqual({
      eventIds: [],
      eventTypes: ['notification'],
      relevant: true,
      names: NO_SUBJECTS,
      unnarrowable: ['the notification does not say what changed'],
    });
  });

  it.each([
    ['model_updated', 'authentik_core', 'user', true],
    ['model_deleted', 'authentik_core', 'group', true],
    ['model_created', 'authentik_policies', 'policybinding', true],
    ['model_updated', 'authentik_core', 'token', false],
  ])('%s of %s.%s is relevant: %s', (action, app, model_name, relevant) => {
    const body = authentikMappedBody(action, { app, model_name, pk: 1, name: 'x' });
    expect(readAuthentikNotification(body)).toMatchObject({ eventIds: [body.event_id], eventTypes: [`${action}:${app}.${model_name}`], relevant });
  });

  it('other actions are not relevant', () => {
    expect(readAuthentikNotification(authentikMappedBody('login'))).toMatchObject({ relevant: false, names: NO_SUBJECTS, unnarrowable: [] });
  });

  it('a user event names the user by pk', () => {
    const body = authentikMappedBody('model_updated', { app: 'authentik_core', model_name: 'user', pk: 42, name: 'ann' });
    expect(readAuthentikNotification(body)).toMatchObject({ relevant: true, names: { userIds: ['42'], logins: [], groupIds: [] }, unnarrowable: [] });
  });

  it('a group event names the group by pk, dashed as the API shows it (authentik logs the hex)', () => {
    const pk = '0f8e5a9c2b7d4e1fa3c6b8d0e2f4a6c8';
    for (const action of ['model_created', 'model_updated', 'model_deleted']) {
      const body = authentikMappedBody(action, { app: 'authentik_core', model_name: 'group', pk, name: 'Engineering' });
      expect(readAuthentikNotification(body)).toMatchObject({ names: { userIds: [], groupIds: ['0f8e5a9c-2b7d-4e1f-a3c6-b8d0e2f4a6c8'] }, unnarrowable: [] });
    }
  });

  it.each([
    ['authentik_core', 'application', 'CRM'],
    ['authentik_policies', 'policybinding', 'Binding from CRM #0 to Group Engineering'],
    ['authentik_core', 'groupsourceconnection', 'x'],
  ])('a change to %s.%s cannot be narrowed', (app, model_name, name) => {
    const body = authentikMappedBody('model_updated', { app, model_name, pk: 'a'.repeat(32), name });
    expect(readAuthentikNotification(body)).toMatchObject({
      relevant: true,
      names: NO_SUBJECTS,
      unnarrowable: [`authentik model_updated:${app}.${model_name} (${name}) cannot be narrowed to users or groups`],
    });
  });

  it('a user event without a usable pk cannot be narrowed', () => {
    const body = authentikMappedBody('model_deleted', { app: 'authentik_core', model_name: 'user', pk: 'ann', name: 'ann' });
    expect(readAuthentikNotification(body)).toMatchObject({ names: NO_SUBJECTS, unnarrowable: [expect.stringContaining('cannot be narrowed')] });
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
