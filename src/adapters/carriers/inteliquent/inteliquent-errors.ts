/**
 * Inteliquent's documented error codes and how each is handled: retryable (the same request may succeed later) or
 * permanent. Source: Inteliquent Services API 2.0.0 (Swagger, as shipped in ooglek/inteliquent-sdk-php
 * `Inteliquent_API_V2-3.yaml`; trimmed copy in shared/fixtures/carriers/inteliquent/): the `statusCode` answers its
 * messaging and message-broker operations document, and the two authentication failures its introduction shows
 * (`401001` for Basic authentication, `900901` for an OAuth token). Codes arrive either as the HTTP status or as
 * the `statusCode` field of a JSON body (`{"statusCode": "408", "status": "<the error>"}`).
 */

export interface InteliquentErrorInfo {
  /** What the specification says the code means. */
  meaning: string;
  retryable: boolean;
}

export const INTELIQUENT_ERROR_CODES: Readonly<Record<string, InteliquentErrorInfo>> = {
  '401001': { meaning: 'Invalid credentials (Basic authentication)', retryable: false },
  '900901': { meaning: 'Invalid credentials (OAuth access token)', retryable: false },
  // "User error occurred. Status field lists the specific error": the request itself is wrong (a `from` not on
  // the account or without messaging, a blank key...). Repeating it cannot help.
  '408': { meaning: 'User error (the status field names it)', retryable: false },
  '409': { meaning: 'Invalid input parameters', retryable: false },
  // A database failure on Inteliquent's side, although listed among the user errors: worth another attempt.
  '410': { meaning: 'Database error', retryable: true },
  // Nothing says what failed; a bounded number of retries is cheaper than losing a message to a transient fault.
  '411': { meaning: 'Unknown error', retryable: true },
  '414': { meaning: 'Required fields missing, or a permission error', retryable: false },
  '417': { meaning: 'Page size must be at most 10000', retryable: false },
  '425': { meaning: 'Unable to provision messaging for this telephone number', retryable: false },
  '430': { meaning: 'No result found', retryable: false },
  '431': { meaning: 'Unable to complete the request at the moment, please try again', retryable: true },
};

/** Whether an answer with this Inteliquent code (or HTTP status) may succeed when repeated. */
export function isRetryableInteliquentCode(code: string, httpStatus: number): boolean {
  const known = INTELIQUENT_ERROR_CODES[code];
  if (known) return known.retryable;
  return httpStatus === 429 || httpStatus >= 500;
}
