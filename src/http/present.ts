/** Turns stored records into API representations (ISO times, public field names). */
import { isSegmentedChannel, segmentSms } from '../domain/sms-encoding.ts';
import type { HistoryEntry, MessageRecord } from '../ports/store.ts';

/** SMS segments and encoding: as recorded when sent, or as the body would be sent. */
function segmentation(m: MessageRecord): { segments: number | null; encoding: string | null } {
  if (m.segments !== null) return { segments: m.segments, encoding: m.encoding };
  if (!isSegmentedChannel(m.channel) || !m.body) return { segments: null, encoding: null };
  const s = segmentSms(m.body);
  return { segments: s.segments, encoding: s.encoding };
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function presentMessage(m: MessageRecord, history?: HistoryEntry[]) {
  return {
    id: m.id,
    direction: m.direction,
    channel: m.channel,
    to: m.to,
    from: m.from,
    status: m.status,
    body: m.body,
    subject: m.subject,
    templateId: m.templateId,
    metadata: m.metadata,
    carrier: m.provider,
    senderId: m.senderId,
    providerMessageId: m.providerMessageId,
    attempts: m.attempts,
    sendAt: iso(m.sendAt),
    error: m.error,
    cost: m.cost,
    ...segmentation(m),
    options: m.options,
    createdAt: iso(m.createdAt) as string,
    updatedAt: iso(m.updatedAt) as string,
    ...(history
      ? {
          history: history.map((h) => ({
            status: h.status,
            at: iso(h.at) as string,
            applied: h.applied,
            detail: h.detail,
          })),
        }
      : {}),
  };
}
