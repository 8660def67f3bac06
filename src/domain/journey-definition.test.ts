import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.ts';
import { parseDuration, parseTimeOfDay, validateDefinition } from './journey-definition.ts';

/** event → send → wait-for reply (YES?) → branch → exit, with every kind of step somewhere. */
function base(): Record<string, any> {
  return {
    trigger: {
      type: 'event',
      event: 'appointment.booked',
      filter: { path: 'event.properties.kind', op: 'eq', value: 'dental' },
    },
    entry: 'send1',
    reentry: { mode: 'cooldown', cooldown: '1d' },
    steps: {
      send1: {
        type: 'send',
        fallback: [
          { channel: 'whatsapp', within: '10m' },
          { channel: 'sms', within: '10m' },
          { channel: 'email', subject: 'Your appointment' },
        ],
        body: 'Reply YES to confirm, {{ contact.firstName }}',
        next: 'reply',
      },
      reply: { type: 'wait_for', reply: { match: ['yes', 'y'] }, timeout: '1h', next: 'tag', onTimeout: 'status' },
      status: {
        type: 'wait_for',
        messageStatus: { step: 'send1', status: ['delivered'] },
        timeout: '5m',
        next: 'split',
        onTimeout: 'done',
      },
      tag: { type: 'update_contact', set: { confirmed: true }, addTags: ['confirmed'], next: 'hook' },
      hook: {
        type: 'webhook',
        url: 'https://example.com/hook',
        timeout: '5s',
        maxAttempts: 3,
        next: 'done',
        onFailure: 'done',
      },
      split: {
        type: 'split',
        variants: [
          { name: 'A', weight: 50, next: 'branch' },
          { name: 'B', weight: 50, next: 'night' },
        ],
      },
      branch: {
        type: 'branch',
        branches: [{ when: { path: 'message.delivered', op: 'eq', value: true }, next: 'done' }],
        otherwise: 'night',
      },
      night: { type: 'wait', until: '09:00', timeZone: 'Europe/Paris', next: 'done' },
      done: { type: 'exit' },
    },
  };
}

function errorOf(def: unknown): { code: string; field: string | undefined } {
  try {
    validateDefinition(def);
  } catch (err) {
    if (err instanceof ValidationError) return { code: err.code, field: err.field };
    throw err;
  }
  throw new Error('the definition was accepted');
}

function mutate(change: (d: Record<string, any>) => void): Record<string, any> {
  const d = base();
  change(d);
  return d;
}

describe('validateDefinition', () => {
  it('accepts a definition using every step type', () => {
    expect(validateDefinition(base()).entry).toBe('send1');
  });

  it('names a dangling edge by its field', () => {
    expect(errorOf(mutate((d) => (d.steps.tag.next = 'nowhere')))).toEqual({
      code: 'dangling_edge',
      field: 'steps.tag.next',
    });
    expect(errorOf(mutate((d) => (d.steps.reply.onTimeout = 'x')))).toEqual({
      code: 'dangling_edge',
      field: 'steps.reply.onTimeout',
    });
    expect(errorOf(mutate((d) => (d.steps.branch.branches[0].next = 'x')))).toEqual({
      code: 'dangling_edge',
      field: 'steps.branch.branches[0].next',
    });
    expect(errorOf(mutate((d) => (d.steps.split.variants[1].next = 'x')))).toEqual({
      code: 'dangling_edge',
      field: 'steps.split.variants[1].next',
    });
    expect(errorOf(mutate((d) => (d.entry = 'x')))).toEqual({ code: 'dangling_edge', field: 'entry' });
  });

  it('refuses a step that cannot be reached', () => {
    expect(errorOf(mutate((d) => (d.steps.orphan = { type: 'exit' })))).toEqual({
      code: 'unreachable_step',
      field: 'steps.orphan',
    });
  });

  it('refuses paths that never end', () => {
    // A loop with a wait but no way out: wait → branch → wait.
    const def = mutate((d) => {
      d.steps.night.next = 'loop';
      d.steps.loop = {
        type: 'branch',
        branches: [{ when: { path: 'reply.text', op: 'exists' }, next: 'night' }],
        otherwise: 'night',
      };
    });
    expect(errorOf(def)).toEqual({ code: 'no_path_to_exit', field: 'steps.night' });
    expect(
      errorOf({
        trigger: { type: 'api' },
        entry: 'w',
        reentry: { mode: 'always' },
        steps: { w: { type: 'wait', duration: '1m', next: 'w' } },
      }),
    ).toEqual({ code: 'no_path_to_exit', field: 'steps.w' });
  });

  it('refuses a loop that passes through no wait', () => {
    const def = mutate((d) => {
      d.steps.branch.otherwise = 'again';
      d.steps.again = { type: 'update_contact', addTags: ['x'], next: 'branch' };
    });
    expect(errorOf(def)).toEqual({ code: 'loop_without_wait', field: 'steps.branch' });
    expect(
      errorOf(
        mutate((d) => {
          d.steps.branch.otherwise = 'branch';
        }),
      ),
    ).toEqual({ code: 'loop_without_wait', field: 'steps.branch' });
    // The same loop through a wait is fine.
    const waited = mutate((d) => {
      d.steps.branch.otherwise = 'pause';
      d.steps.pause = { type: 'wait', duration: '1h', next: 'branch' };
    });
    expect(() => validateDefinition(waited)).not.toThrow();
  });

  it('refuses unknown step types and trigger types', () => {
    expect(errorOf(mutate((d) => (d.steps.tag.type = 'teleport')))).toEqual({
      code: 'unknown_step_type',
      field: 'steps.tag.type',
    });
    expect(errorOf(mutate((d) => delete d.steps.tag.type))).toEqual({ code: 'missing_field', field: 'steps.tag.type' });
    expect(errorOf(mutate((d) => (d.trigger = { type: 'cron' })))).toEqual({
      code: 'unknown_trigger_type',
      field: 'trigger.type',
    });
  });

  it('refuses bad durations and times of day', () => {
    expect(errorOf(mutate((d) => (d.steps.reply.timeout = '10 minutes')))).toEqual({
      code: 'invalid_duration',
      field: 'steps.reply.timeout',
    });
    expect(errorOf(mutate((d) => (d.steps.reply.timeout = 60)))).toEqual({
      code: 'invalid_duration',
      field: 'steps.reply.timeout',
    });
    expect(errorOf(mutate((d) => (d.steps.send1.fallback[0].within = '0s')))).toEqual({
      code: 'invalid_duration',
      field: 'steps.send1.fallback[0].within',
    });
    expect(errorOf(mutate((d) => (d.reentry.cooldown = '400d')))).toEqual({
      code: 'invalid_duration',
      field: 'reentry.cooldown',
    });
    expect(errorOf(mutate((d) => (d.steps.hook.timeout = '1m')))).toEqual({
      code: 'invalid_duration',
      field: 'steps.hook.timeout',
    });
    expect(errorOf(mutate((d) => (d.steps.night.until = '25:00')))).toEqual({
      code: 'invalid_time',
      field: 'steps.night.until',
    });
    expect(errorOf(mutate((d) => (d.steps.night.timeZone = 'Mars/Olympus')))).toEqual({
      code: 'invalid_time_zone',
      field: 'steps.night.timeZone',
    });
    expect(errorOf(mutate((d) => (d.steps.night.duration = '1h')))).toEqual({
      code: 'invalid_wait',
      field: 'steps.night',
    });
  });

  it('checks send steps: channels, content and the fallback chain', () => {
    expect(errorOf(mutate((d) => (d.steps.send1.fallback[1].channel = 'pigeon')))).toEqual({
      code: 'unknown_channel',
      field: 'steps.send1.fallback[1].channel',
    });
    expect(errorOf(mutate((d) => delete d.steps.send1.fallback[0].within))).toEqual({
      code: 'missing_field',
      field: 'steps.send1.fallback[0].within',
    });
    expect(errorOf(mutate((d) => delete d.steps.send1.body))).toEqual({
      code: 'missing_content',
      field: 'steps.send1.fallback[0]',
    });
    expect(errorOf(mutate((d) => (d.steps.send1.template = { id: 'tpl_1' })))).toEqual({
      code: 'conflicting_content',
      field: 'steps.send1',
    });
    expect(errorOf(mutate((d) => (d.steps.send1.channel = 'sms')))).toEqual({
      code: 'conflicting_channels',
      field: 'steps.send1',
    });
    const single = mutate((d) => {
      d.steps.send1 = { type: 'send', channel: 'sms', template: { id: 'tpl_1', variables: { a: 1 } }, next: 'reply' };
    });
    expect(() => validateDefinition(single)).not.toThrow();
    expect(errorOf(mutate((d) => (d.steps.send1 = { type: 'send', body: 'x', next: 'reply' })))).toEqual({
      code: 'missing_field',
      field: 'steps.send1.channel',
    });
    expect(errorOf(mutate((d) => (d.steps.send1.purpose = 'spam')))).toEqual({
      code: 'invalid_value',
      field: 'steps.send1.purpose',
    });
  });

  it('checks wait_for, split, update_contact and webhook steps', () => {
    expect(errorOf(mutate((d) => (d.steps.reply.event = { name: 'clicked' })))).toEqual({
      code: 'invalid_wait',
      field: 'steps.reply',
    });
    expect(errorOf(mutate((d) => (d.steps.status.messageStatus.step = 'tag')))).toEqual({
      code: 'invalid_reference',
      field: 'steps.status.messageStatus.step',
    });
    expect(errorOf(mutate((d) => (d.steps.status.messageStatus.status = ['delivered', 'lost'])))).toEqual({
      code: 'invalid_status',
      field: 'steps.status.messageStatus.status[1]',
    });
    expect(errorOf(mutate((d) => delete d.steps.reply.onTimeout))).toEqual({
      code: 'missing_field',
      field: 'steps.reply.onTimeout',
    });
    expect(errorOf(mutate((d) => (d.steps.split.variants[0].weight = 0)))).toEqual({
      code: 'invalid_weight',
      field: 'steps.split.variants[0].weight',
    });
    expect(errorOf(mutate((d) => (d.steps.split.variants = [d.steps.split.variants[0]])))).toEqual({
      code: 'invalid_value',
      field: 'steps.split.variants',
    });
    expect(errorOf(mutate((d) => (d.steps.tag = { type: 'update_contact', next: 'hook' })))).toEqual({
      code: 'missing_field',
      field: 'steps.tag.set',
    });
    expect(errorOf(mutate((d) => (d.steps.hook.url = 'ftp://example.com/x')))).toEqual({
      code: 'invalid_url',
      field: 'steps.hook.url',
    });
    expect(errorOf(mutate((d) => (d.steps.hook.headers = { 'X-Ok': 'a\r\nInjected: 1' })))).toEqual({
      code: 'invalid_value',
      field: 'steps.hook.headers.X-Ok',
    });
    expect(errorOf(mutate((d) => (d.steps.hook.maxAttempts = 11)))).toEqual({
      code: 'invalid_value',
      field: 'steps.hook.maxAttempts',
    });
  });

  it('checks conditions down to the faulty node', () => {
    expect(
      errorOf(
        mutate(
          (d) =>
            (d.steps.branch.branches[0].when = {
              all: [
                { path: 'contact.x', op: 'eq', value: 1 },
                { path: 'contact.y', op: 'like', value: 'a' },
              ],
            }),
        ),
      ),
    ).toEqual({
      code: 'invalid_condition',
      field: 'steps.branch.branches[0].when.all[1].op',
    });
    expect(
      errorOf(mutate((d) => (d.steps.branch.branches[0].when = { path: 'weather.today', op: 'eq', value: 'sun' }))),
    ).toEqual({
      code: 'invalid_condition',
      field: 'steps.branch.branches[0].when.path',
    });
    expect(
      errorOf(
        mutate((d) => (d.steps.branch.branches[0].when = { path: 'messages.tag.status', op: 'eq', value: 'sent' })),
      ),
    ).toEqual({
      code: 'invalid_reference',
      field: 'steps.branch.branches[0].when.path',
    });
    expect(
      errorOf(mutate((d) => (d.steps.branch.branches[0].when = { path: 'contact.plan', op: 'in', value: 'gold' }))),
    ).toEqual({
      code: 'invalid_condition',
      field: 'steps.branch.branches[0].when.value',
    });
    expect(errorOf(mutate((d) => (d.trigger.filter = { path: 'contact.plan', op: 'eq', value: 'gold' })))).toEqual({
      code: 'invalid_condition',
      field: 'trigger.filter.path',
    });
  });

  it('refuses unknown fields, bad step ids and a malformed root', () => {
    expect(errorOf(mutate((d) => (d.steps.tag.nxt = 'hook')))).toEqual({
      code: 'unknown_field',
      field: 'steps.tag.nxt',
    });
    expect(errorOf(mutate((d) => (d.steps['bad id'] = { type: 'exit' })))).toEqual({
      code: 'invalid_step_id',
      field: 'steps.bad id',
    });
    expect(errorOf(mutate((d) => (d.extra = 1)))).toEqual({ code: 'unknown_field', field: 'definition.extra' });
    expect(errorOf(mutate((d) => delete d.reentry))).toEqual({ code: 'missing_field', field: 'reentry' });
    expect(errorOf(mutate((d) => (d.reentry = { mode: 'sometimes' })))).toEqual({
      code: 'invalid_reentry',
      field: 'reentry.mode',
    });
    expect(errorOf(mutate((d) => delete d.entry))).toEqual({ code: 'missing_field', field: 'entry' });
    expect(errorOf(mutate((d) => (d.steps = {})))).toEqual({ code: 'invalid_value', field: 'steps' });
    expect(errorOf([])).toEqual({ code: 'invalid_type', field: 'definition' });
  });
});

describe('parseDuration', () => {
  it('reads compact and ISO-8601 durations', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('PT10M')).toBe(600_000);
    expect(parseDuration('P1DT1H')).toBe(90_000_000);
  });

  it('refuses what is not one, zero, months and more than 366 days', () => {
    for (const bad of ['', '10', 'm', '1x', '1m1h', 'P1M', 'P0D', '0s', '367d', 'soon', 10, null])
      expect(parseDuration(bad), String(bad)).toBeUndefined();
  });
});

describe('parseTimeOfDay', () => {
  it('reads HH:MM', () => {
    expect(parseTimeOfDay('09:05')).toEqual([9, 5]);
    expect(parseTimeOfDay('23:59')).toEqual([23, 59]);
    expect(parseTimeOfDay('9:05')).toBeUndefined();
    expect(parseTimeOfDay('24:00')).toBeUndefined();
  });
});
