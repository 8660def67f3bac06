/** Response and shared schemas for the OpenAPI document (request schemas live beside their services). */
import { Type } from '@sinclair/typebox';
import { STATUSES } from '../domain/message-status.ts';

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      field: Type.Optional(Type.String()),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { $id: 'Error', description: 'Every 4xx/5xx answer has this shape' },
);

export const errorResponses = {
  400: Type.Ref('Error'),
  401: Type.Ref('Error'),
  404: Type.Ref('Error'),
};

export const AcceptedSchema = Type.Object({
  id: Type.String(),
  status: Type.Union([Type.Literal('queued'), Type.Literal('scheduled')]),
});

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const MessageErrorSchema = Type.Object({ code: Type.String(), class: Type.String(), message: Type.String() });

export const HistorySchema = Type.Object({
  status: Type.String({ enum: [...STATUSES] }),
  at: Type.String({ format: 'date-time' }),
  applied: Type.Boolean({ description: 'false for a late or repeated event that changed nothing' }),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});

export const MessageSchema = Type.Object({
  id: Type.String(),
  direction: Type.String({ enum: ['outbound', 'inbound'] }),
  channel: Type.String(),
  to: Type.String(),
  from: Nullable(Type.String()),
  status: Type.String({ enum: [...STATUSES] }),
  body: Nullable(Type.String()),
  subject: Nullable(Type.String()),
  templateId: Nullable(Type.String()),
  metadata: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  carrier: Nullable(Type.String({ description: 'provider of the sender that handled it' })),
  senderId: Nullable(Type.String()),
  providerMessageId: Nullable(Type.String()),
  attempts: Type.Integer(),
  sendAt: Nullable(Type.String({ format: 'date-time' })),
  error: Type.Union([MessageErrorSchema, Type.Null()]),
  cost: Type.Union([Type.Number(), Type.Null()]),
  segments: Type.Union([Type.Integer(), Type.Null()], { description: 'SMS segments (160/153 GSM-7, 70/67 UCS-2)' }),
  encoding: Type.Union([Type.String({ enum: ['GSM-7', 'UCS-2'] }), Type.Null()]),
  options: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  history: Type.Optional(Type.Array(HistorySchema)),
});
