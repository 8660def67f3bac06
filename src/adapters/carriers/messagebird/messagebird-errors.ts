/**
 * MessageBird's REST API error codes (the `errors[].code` of an error answer) and how each is handled: retryable
 * (the same request may succeed later) or permanent. Source: MessageBird REST API reference, "Errors"
 * (https://developers.messagebird.com/api/#errors), the same table the official SDKs encode
 * (messagebird/csharp-rest-api `MessageBird/Objects/Error.cs`, whose `ErrorCode` enum lacks only 21), and
 * Bird's "Common API usage" page (https://docs.bird.com/api/api-access/common-api-usage): 4xx answers are client
 * errors, 5xx answers are server errors that are safe to retry with a delay.
 */

export interface MessageBirdErrorInfo {
  /** MessageBird's own description of the code. */
  description: string;
  retryable: boolean;
}

export const MESSAGEBIRD_ERROR_CODES: Readonly<Record<number, MessageBirdErrorInfo>> = {
  // The access key is wrong or lacks the right: retrying with the same key cannot succeed.
  2: { description: 'Request not allowed', retryable: false },
  9: { description: 'Missing params', retryable: false },
  10: { description: 'Invalid params', retryable: false },
  20: { description: 'Not found', retryable: false },
  21: { description: 'Bad request', retryable: false },
  // The account must be topped up first; an automatic retry only burns attempts until someone does.
  25: { description: 'Not enough balance', retryable: false },
  98: { description: 'API not found', retryable: false },
  99: { description: 'Internal error', retryable: true },
};

/** HTTP statuses of MessageBird answers that mean "try again later" whatever error code the body carries. */
export function isRetryableMessageBirdStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Whether a failed request may succeed when repeated: by HTTP status first (timeouts, throttling and server
 * errors are always retryable), then by the documented error code; unknown codes on a 4xx are permanent.
 */
export function isRetryableMessageBirdError(status: number, code: number | undefined): boolean {
  if (isRetryableMessageBirdStatus(status)) return true;
  if (code === undefined) return false;
  return MESSAGEBIRD_ERROR_CODES[code]?.retryable ?? false;
}
