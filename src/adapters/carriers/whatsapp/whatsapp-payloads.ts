/**
 * Request bodies of the Cloud API's `POST /{Version}/{Phone-Number-ID}/messages` (Meta's OpenAPI description
 * `business-messaging-api_v23.0.yaml`, examples "Send Text Message", "Send Reply to Text Message", "Send Image
 * Message by URL", "Send Message Template Text/Media/Interactive", "Send Reply Button", "Send List Message").
 *
 * One message per request. What is sent, in order of precedence: a template (`options.whatsapp.template`), an
 * interactive message (`options.whatsapp.interactive`), a media message by link (`options.mediaUrls`, the body
 * as caption), otherwise a text message. `options.whatsapp.replyTo` becomes `context.message_id`; our message id
 * travels in `biz_opaque_callback_data`, which Meta returns untouched in the status webhooks.
 */
import type { SendRequest } from '../../../ports/carrier.ts';
import { isRecord } from '../carrier-support.ts';

/** Longest `biz_opaque_callback_data` Meta accepts (Messages reference: "Maximum 512 characters"). */
export const MAX_CALLBACK_DATA_LENGTH = 512;
/** Longest text body Meta accepts (Messages reference, text object: "Maximum 4096 characters"). */
export const MAX_TEXT_LENGTH = 4096;
/** Longest media caption Meta accepts (Messages reference, media object: "Maximum 1024 characters"). */
export const MAX_CAPTION_LENGTH = 1024;

export type WhatsAppMessageBody = Record<string, unknown>;

/** A body to send, or why this request cannot become one (a permanent failure: retrying changes nothing). */
export type BuiltMessage = { ok: true; body: WhatsAppMessageBody } | { ok: false; code: string; message: string };

type MediaKind = 'image' | 'video' | 'document';

const DOCUMENT_EXTENSIONS = new Set(['pdf', 'doc', 'docx', 'xls', 'xlsx', 'ppt', 'pptx', 'txt', 'csv']);
const VIDEO_EXTENSIONS = new Set(['mp4', '3gp']);
const URL_IN_TEXT = /\bhttps?:\/\/\S/i;

export function buildMessageBody(request: SendRequest): BuiltMessage {
  const wa = request.options?.whatsapp;
  const common: WhatsAppMessageBody = {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    to: request.to,
  };
  if (wa?.replyTo !== undefined) {
    if (typeof wa.replyTo !== 'string' || wa.replyTo.length === 0) {
      return unsupported('options.whatsapp.replyTo must be the provider id of an earlier message');
    }
    common.context = { message_id: wa.replyTo };
  }
  const content = wa?.template
    ? templateContent(wa.template)
    : wa?.interactive
      ? interactiveContent(wa.interactive, request.body)
      : request.options?.mediaUrls && request.options.mediaUrls.length > 0
        ? mediaContent(request.options.mediaUrls, request.body)
        : textContent(request.body);
  if (!content.ok) return content;
  const body: WhatsAppMessageBody = { ...common, ...content.body };
  if (request.messageId.length > 0 && request.messageId.length <= MAX_CALLBACK_DATA_LENGTH) {
    body.biz_opaque_callback_data = request.messageId;
  }
  return { ok: true, body };
}

function textContent(text: string | null): BuiltMessage {
  if (text === null || text.length === 0) return invalid('whatsapp_empty_body', 'a WhatsApp text message needs a body');
  if (text.length > MAX_TEXT_LENGTH) {
    return invalid('whatsapp_body_too_long', `a WhatsApp text body allows at most ${MAX_TEXT_LENGTH} characters`);
  }
  return { ok: true, body: { type: 'text', text: { body: text, preview_url: URL_IN_TEXT.test(text) } } };
}

function templateContent(template: { name: string; language: string; components?: Record<string, unknown>[] }) {
  if (typeof template.name !== 'string' || template.name.length === 0) {
    return unsupported('options.whatsapp.template.name must be a non-empty string');
  }
  if (typeof template.language !== 'string' || template.language.length === 0) {
    return unsupported('options.whatsapp.template.language must be a language code such as en_US');
  }
  const components = template.components;
  if (components !== undefined && (!Array.isArray(components) || !components.every(isRecord))) {
    return unsupported('options.whatsapp.template.components must be an array of component objects');
  }
  const body: Record<string, unknown> = {
    name: template.name,
    // `policy: deterministic` is the only language policy there is; the published schema requires it.
    language: { policy: 'deterministic', code: template.language },
  };
  if (components && components.length > 0) body.components = components;
  return ok({ type: 'template', template: body });
}

function interactiveContent(interactive: Record<string, unknown>, text: string | null): BuiltMessage {
  if (!isRecord(interactive) || typeof interactive.type !== 'string' || !isRecord(interactive.action)) {
    return unsupported('options.whatsapp.interactive must be a Cloud API interactive object with a type and an action');
  }
  const value: Record<string, unknown> = { ...interactive };
  // Reply-button and list messages need a body; the message's own text is the natural one.
  if (value.body === undefined && text !== null && text.length > 0) value.body = { text };
  return ok({ type: 'interactive', interactive: value });
}

function mediaContent(urls: readonly string[], caption: string | null): BuiltMessage {
  if (urls.length > 1) {
    return unsupported('a WhatsApp message carries one media item; send each media URL as its own message');
  }
  const link = urls[0] as string;
  if (!URL.canParse(link) || !/^https?:$/.test(new URL(link).protocol)) {
    return unsupported('WhatsApp media must be a public http(s) URL');
  }
  const kind = mediaKind(link);
  const media: Record<string, unknown> = { link };
  if (caption !== null && caption.length > 0) {
    if (caption.length > MAX_CAPTION_LENGTH) {
      return invalid(
        'whatsapp_body_too_long',
        `a WhatsApp media caption allows at most ${MAX_CAPTION_LENGTH} characters`,
      );
    }
    media.caption = caption;
  }
  if (kind === 'document') {
    const name = fileName(link);
    if (name.length > 0) media.filename = name;
  }
  return ok({ type: kind, [kind]: media });
}

/** The Cloud API media type of a link, by its file extension (images unless it names a video or document). */
export function mediaKind(link: string): MediaKind {
  const path = URL.canParse(link) ? new URL(link).pathname : link;
  const ext = path.includes('.') ? (path.split('.').pop() ?? '').toLowerCase() : '';
  if (DOCUMENT_EXTENSIONS.has(ext)) return 'document';
  if (VIDEO_EXTENSIONS.has(ext)) return 'video';
  return 'image';
}

function fileName(link: string): string {
  const last = new URL(link).pathname.split('/').pop() ?? '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

function ok(body: WhatsAppMessageBody): BuiltMessage {
  return { ok: true, body };
}

function invalid(code: string, message: string): BuiltMessage {
  return { ok: false, code, message };
}

function unsupported(message: string): BuiltMessage {
  return invalid('whatsapp_unsupported_content', message);
}
