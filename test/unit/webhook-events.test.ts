import { describe, expect, it } from 'vitest';
import { NO_SUBJECTS } from '../../src/connectors/connector.js';
import { MalformedWebhookError, readAuthentikNotification, readOktaDelivery } from '../../src/webhooks/events.js';
import { presentedSecret } from '../../src/webhooks/receive.js';
import { authentikDefaultBody, authentikMappedBody, oktaDelivery } from '../support/webhook-bodies.js';

// Event targets as Okta's System Log gives them (src/connectors/okta/okta.events.ts cites samples).
const user = (id: string) => ({ id, type: 'User', alternateId: `${id}@acme.test`, displayName: 'Ann Lee' });
const group = (id: string) => ({ id, type: 'UserGroup', alternateId: 'unknown', displayName: 'Engineering' });
const app = (id: string) => ({ id, type: 'AppInstance', alternateId: 'Acme Portal', displayName: 'Acme Portal' });
const appUser = (id: string) => ({ id, type: 'AppUser', alternateId: 'ann@acme.test', displayName: 'Ann Lee' });

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

  it.each([
    ['user.lifecycle.deactivate', [user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['user.account.update_profile', [user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['group.user_membership.add', [group('00gEng'), user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['group.user_membership.remove', [group('00gEng'), user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['application.user_membership.add', [appUser('0uaAnn'), app('0oaOurs'), user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['application.user_membership.remove', [appUser('0uaAnn'), app('0oaOurs'), user('00uAnn')], { userIds: ['00uAnn'], groupIds: [] }],
    ['group.lifecycle.create', [group('00gEng')], { userIds: [], groupIds: ['00gEng'] }],
    ['group.lifecycle.delete', [group('00gEng')], { userIds: [], groupIds: ['00gEng'] }],
    ['group.profile.update', [group('00gEng')], { userIds: [], groupIds: ['00gEng'] }],
    ['group.application_assignment.add', [app('0oaOurs'), group('00gEng')], { userIds: [], groupIds: ['00gEng'] }],
    ['group.application_assignment.remove', [app('0oaOurs'), group('00gEng')], { userIds: [], groupIds: ['00gEng'] }],
  ])('%s names its targets by id (an AppUser is not the user)', (eventType, target, names) => {
    const signal = readOktaDelivery(oktaDelivery([{ eventType, target }]), '0oaOurs');
    expect(signal).toMatchObject({ relevant: true, names: { ...names, logins: [] }, unnarrowable: [] });
  });

  it('a change to the integration\'s app itself cannot be narrowed; to another app it is nothing', () => {
    const deactivated = (appId: string) => oktaDelivery([{ eventType: 'application.lifecycle.deactivate', target: [app(appId)] }]);
    expect(readOktaDelivery(deactivated('0oaOurs'), '0oaOurs')).toMatchObject({ relevant: true, unnarrowable: [expect.stringContaining('0oaOurs')] });
    expect(readOktaDelivery(deactivated('0oaOther'), '0oaOurs')).toMatchObject({ relevant: false, unnarrowable: [] });
    expect(readOktaDelivery(deactivated('0oaOurs'), null)).toMatchObject({ relevant: false, unnarrowable: [] });
  });

  it('an event that should name a subject but names none cannot be narrowed', () => {
    const body = oktaDelivery([{ eventType: 'user.lifecycle.suspend', target: [{ id: '0oaOurs', type: 'AppInstance' }] }]);
    expect(readOktaDelivery(body, null)).toMatchObject({ relevant: true, names: { userIds: [] }, unnarrowable: ['an Okta user.lifecycle.suspend event names no user'] });
  });

  it('tells users whose changes keep them in the app (in place) from those who left a group, and from those any other change may move', () => {
    const body = oktaDelivery([
      { eventType: 'user.account.update_profile', target: [user('00uAnn')] },
      { eventType: 'group.user_membership.remove', target: [group('00gEng'), user('00uBo')] },
      { eventType: 'user.lifecycle.unsuspend', target: [user('00uBo')] },
      { eventType: 'group.user_membership.remove', target: [group('00gEng'), user('00uCy')] },
      { eventType: 'user.lifecycle.deactivate', target: [user('00uCy')] },
      { eventType: 'application.user_membership.add', target: [user('00uDee')] },
      { eventType: 'group.user_membership.add', target: [group('00gEng'), user('00uEd')] },
    ]);
    expect(readOktaDelivery(body, null).names).toEqual({
      userIds: ['00uAnn', '00uBo', '00uCy', '00uDee', '00uEd'],
      logins: [],
      groupIds: [],
      inPlace: ['00uAnn', '00uEd'],
      leftGroups: ['00uBo'],
    });
  });

  it('names each subject once across a batch, and takes no id that is not Okta-shaped', () => {
    const body = oktaDelivery([
      { eventType: 'user.lifecycle.suspend', target: [user('00uAnn')] },
      { eventType: 'group.user_membership.add', target: [group('00gEng'), user('00uAnn'), user('00uBo')] },
      { eventType: 'user.lifecycle.activate', target: [user('../../api/v1/users'), user('00uCy')] },
    ]);
    expect(readOktaDelivery(body, null).names).toEqual({ userIds: ['00uAnn', '00uBo', '00uCy'], logins: [], groupIds: [], inPlace: ['00uAnn', '00uBo'] });
  });

  it('ignores app assignments to another app than the integration\'s', () => {
    const body = (appId: string) => oktaDelivery([{ eventType: 'application.user_membership.add', target: [appUser('0uaAnn'), app(appId), user('00uAnn')] }]);
    expect(readOktaDelivery(body('0oaOurs'), '0oaOurs')).toMatchObject({ relevant: true, names: { userIds: ['00uAnn'] } });
    expect(readOktaDelivery(body('0oaOther'), '0oaOurs')).toMatchObject({ relevant: false, names: { userIds: [] } });
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
