/**
 * Lob API error codes in our error taxonomy.
 *
 * Lob answers every failed request with the envelope `{ "error": { "message", "status_code", "code" } }`
 * (lob/lob-openapi `shared/models/error.yml`; API reference section "Errors"). `code` is one of the
 * lower-case strings of the three documented enums, each listed below with the HTTP status the docs give it:
 * `shared/models/errors/generic.yml`, `shared/models/errors/authentication.yml` and
 * `shared/models/errors/advanced.yml` (the "Error Codes - Generic / Authentication / Advanced" tables).
 *
 * Retryable are the codes whose documented meaning is a passing condition: Lob's own failures
 * (`internal_server_error`, `service_unavailable`, `request_timeout`), throttling (`rate_limit_exceeded`) and a
 * remote asset that downloaded too slowly. Everything else describes the request, the account or the
 * credentials and fails the same way when repeated. Codes Lob adds later fall back to their HTTP status.
 */

export interface LobErrorCode {
  /** HTTP statuses the documentation gives this code. */
  statuses: readonly number[];
  retryable: boolean;
  /** Which of Lob's tables lists it. */
  table: 'generic' | 'authentication' | 'advanced';
}

export const LOB_ERROR_CODES: Readonly<Record<string, LobErrorCode>> = {
  // Error Codes - Generic
  bad_request: { statuses: [422], retryable: false, table: 'generic' },
  conflict: { statuses: [409, 422], retryable: false, table: 'generic' },
  feature_limit_reached: { statuses: [403], retryable: false, table: 'generic' },
  internal_server_error: { statuses: [500], retryable: true, table: 'generic' },
  invalid: { statuses: [422], retryable: false, table: 'generic' },
  not_deletable: { statuses: [422], retryable: false, table: 'generic' },
  not_found: { statuses: [404], retryable: false, table: 'generic' },
  request_timeout: { statuses: [408], retryable: true, table: 'generic' },
  service_unavailable: { statuses: [503], retryable: true, table: 'generic' },
  // The enum spells it `unrecognised_endpoint`, the rendered table `UNRECOGNIZED_ENDPOINT`: both are listed.
  unrecognised_endpoint: { statuses: [404], retryable: false, table: 'generic' },
  unrecognized_endpoint: { statuses: [404], retryable: false, table: 'generic' },
  unsupported_lob_version: { statuses: [422], retryable: false, table: 'generic' },

  // Error Codes - Authentication
  email_required: { statuses: [401], retryable: false, table: 'authentication' },
  invalid_api_key: { statuses: [401, 403], retryable: false, table: 'authentication' },
  publishable_key_not_allowed: { statuses: [403], retryable: false, table: 'authentication' },
  rate_limit_exceeded: { statuses: [429], retryable: true, table: 'authentication' },
  unauthorized: { statuses: [401], retryable: false, table: 'authentication' },
  unauthorized_token: { statuses: [401], retryable: false, table: 'authentication' },

  // Error Codes - Advanced
  address_length_exceeds_limit: { statuses: [422], retryable: false, table: 'advanced' },
  bank_account_already_verified: { statuses: [422], retryable: false, table: 'advanced' },
  bank_error: { statuses: [422], retryable: false, table: 'advanced' },
  // Needs new envelopes ordered from the dashboard before the same letter can be sent.
  custom_envelope_inventory_depleted: { statuses: [422], retryable: false, table: 'advanced' },
  deleted_bank_account: { statuses: [404], retryable: false, table: 'advanced' },
  failed_deliverability_strictness: { statuses: [422], retryable: false, table: 'advanced' },
  file_pages_below_min: { statuses: [422], retryable: false, table: 'advanced' },
  file_pages_exceed_max: { statuses: [422], retryable: false, table: 'advanced' },
  file_size_exceeds_limit: { statuses: [422], retryable: false, table: 'advanced' },
  foreign_return_address: { statuses: [422], retryable: false, table: 'advanced' },
  inconsistent_page_dimensions: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_bank_account: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_bank_account_verification: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_check_international: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_country_covid: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_file: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_file_dimensions: { statuses: [422], retryable: false, table: 'advanced' },
  // A remote file that took too long to download: the next attempt may well be faster.
  invalid_file_download_time: { statuses: [422], retryable: true, table: 'advanced' },
  invalid_file_url: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_image_dpi: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_international_feature: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_perforation_return_envelope: { statuses: [422], retryable: false, table: 'advanced' },
  invalid_template_html: { statuses: [422], retryable: false, table: 'advanced' },
  merge_variable_required: { statuses: [422], retryable: false, table: 'advanced' },
  merge_variable_whitespace: { statuses: [422], retryable: false, table: 'advanced' },
  payment_method_unverified: { statuses: [401], retryable: false, table: 'advanced' },
  pdf_encrypted: { statuses: [422], retryable: false, table: 'advanced' },
  special_characters_restricted: { statuses: [422], retryable: false, table: 'advanced' },
  unembedded_fonts: { statuses: [422], retryable: false, table: 'advanced' },
};

/** HTTP statuses that mean "try again later" whatever the code (Lob's "5xx indicates an error on Lob's end"). */
function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Whether a failed request may succeed when repeated. Credentials and account refusals (401, 403) never do,
 * whatever code accompanies them; a documented code decides next; an unknown one follows its HTTP status.
 */
export function isRetryableLobError(code: string | undefined, status: number): boolean {
  if (status === 401 || status === 403) return false;
  const known = code === undefined ? undefined : LOB_ERROR_CODES[code.toLowerCase()];
  if (known) return known.retryable;
  return retryableStatus(status);
}
