/**
 * Bandwidth Messaging v2 `errorCode`s (the `message-failed` callback) in our error taxonomy.
 *
 * Source: https://dev.bandwidth.com/docs/messaging/errors (api-docs `site/docs/messaging/errors.mdx`). The
 * code's first digit says who is at fault: 4 = client error ("repeating the request will produce the same
 * result"), 5 = service failure ("the customer can retry the request and expect a different result"; for
 * carrier-reported ones "limit to a single retry attempt"), 9 = ambiguous downstream error. The second digit
 * says who detected it: 1-4 Bandwidth, 7 (client) / 6 (service) the downstream carrier.
 *
 * Every documented code is listed with its classification. The few 4xxx codes marked retryable are the
 * ones whose documented meaning is a passing condition: a subscriber who is unreachable for now (handset
 * off, SIM full, store-and-forward) and the carriers' volumetric limits, which the docs say to back off from
 * and retry later. Codes Bandwidth adds later fall back to the first digit's meaning.
 */
import type { MessageError } from '../../../domain/message-status.ts';

export interface BandwidthErrorCode {
  /** Bandwidth's machine description (the table's "Description" column). */
  name: string;
  retryable: boolean;
}

export const BANDWIDTH_ERROR_CODES: Readonly<Record<number, BandwidthErrorCode>> = {
  // Bandwidth Detected Client Errors: the request itself is unacceptable.
  4001: { name: 'service-not-allowed', retryable: false },
  4301: { name: 'malformed-invalid-encoding', retryable: false },
  4302: { name: 'malformed-invalid-from-number', retryable: false },
  4303: { name: 'malformed-invalid-to-number', retryable: false },
  4350: { name: 'malformed-for-destination', retryable: false },
  4360: { name: 'message-not-sent-expiration-date-passed', retryable: false },
  4401: { name: 'rejected-routing-error', retryable: false },
  4403: { name: 'rejected-forbidden-from-number', retryable: false },
  4404: { name: 'rejected-forbidden-to-number', retryable: false },
  4405: { name: 'rejected-unallocated-from-number', retryable: false },
  4406: { name: 'rejected-unallocated-to-number', retryable: false },
  4407: { name: 'rejected-account-not-defined-from-number', retryable: false },
  4408: { name: 'rejected-account-not-defined-to-number', retryable: false },
  4409: { name: 'rejected-invalid-from-profile', retryable: false },
  4410: { name: 'media-unavailable', retryable: false },
  4411: { name: 'rejected-message-size-limit-exceeded', retryable: false },
  4412: { name: 'media-content-invalid', retryable: false },
  4420: { name: 'rejected-carrier-does-not-exist', retryable: false },
  4421: { name: 'rejected-forbidden-no-destination', retryable: false },
  4431: { name: 'rejected-forbidden-shortcode', retryable: false },
  4432: { name: 'rejected-forbidden-country', retryable: false },
  4433: { name: 'rejected-forbidden-tollfree', retryable: false },
  4434: { name: 'rejected-forbidden-tollfree-for-recipient', retryable: false },
  4435: { name: 'forbidden-too-many-recipients', retryable: false },
  4451: { name: 'rejected-wrong-user-id', retryable: false },
  4452: { name: 'rejected-wrong-application-id', retryable: false },
  4470: { name: 'rejected-spam-detected', retryable: false },
  4481: { name: 'rejected-from-number-in-blacklist', retryable: false },
  4482: { name: 'rejected-to-number-in-blacklist', retryable: false },
  4492: { name: 'reject-emergency', retryable: false },
  4493: { name: 'rejected-unauthorized', retryable: false },

  // Carrier Reported Client Errors: the destination carrier refused the message.
  4700: { name: 'invalid-service-type', retryable: false },
  4701: { name: 'destination-service-unavailable', retryable: false },
  // Handset off, subscriber busy, SIM or voicemail full, held in the carrier's store-and-forward: passes.
  4702: { name: 'destination-subscriber-unavailable', retryable: true },
  4711: { name: 'rejected-message-size-limit-exceeded', retryable: false },
  4712: { name: 'media-content-invalid', retryable: false },
  4720: { name: 'invalid-destination-address', retryable: false },
  4721: { name: 'destination-tn-deactivated', retryable: false },
  4730: { name: 'no-route-to-destination-carrier', retryable: false },
  4740: { name: 'invalid-source-address-address', retryable: false },
  4750: { name: 'destination-rejected-message', retryable: false },
  4751: { name: 'destination-rejected-message-size-invalid', retryable: false },
  4752: { name: 'destination-rejected-malformed', retryable: false },
  4753: { name: 'destination-rejected-handset', retryable: false },
  4770: { name: 'destination-spam-detected', retryable: false },
  4771: { name: 'rejected-shortened-url', retryable: false },
  4772: { name: 'rejected-tn-blocked', retryable: false },
  4773: { name: 'inactive-campaign', retryable: false },
  4774: { name: 'provisioning-issue', retryable: false },
  4775: { name: 'destination-rejected-due-to-user-opt-out', retryable: false },
  // Volumetric limits and throttling: "you have sent over the allotted limit ... please retry after some time".
  4780: { name: 'volume-violation-tmo', retryable: true },
  4781: { name: 'volume-violation-att', retryable: true },
  4785: { name: 'volumetric-violation', retryable: true },
  4790: { name: 'destination-rejected-sc-not-allowed', retryable: false },
  4791: { name: 'destination-rejected-campaign-not-allowed', retryable: false },
  4792: { name: 'destination-rejected-sc-not-provisioned', retryable: false },
  4793: { name: 'destination-rejected-sc-expired', retryable: false },
  4795: { name: 'tfn-not-verified', retryable: false },

  // Bandwidth Service Failures: a retry can be expected to give a different result.
  5100: { name: 'temporary-app-error', retryable: true },
  5101: { name: 'temporary-app-shutdown', retryable: true },
  5106: { name: 'impossible-to-route', retryable: true },
  5111: { name: 'temporary-app-connection-closed', retryable: true },
  5201: { name: 'temporary-rout-error-retries-exceeded', retryable: true },
  5211: { name: 'temporary-app-error-app-busy', retryable: true },
  5220: { name: 'temporary-store-error', retryable: true },
  5231: { name: 'discarded-concatenation-timeout', retryable: true },
  5500: { name: 'message-send-failed', retryable: true },
  5501: { name: 'message-send-failed', retryable: true },
  5999: { name: 'unknown-error', retryable: true },

  // Carrier Reported Service Failures: congestion, queue full, carrier application errors.
  5600: { name: 'destination-carrier-queue-full', retryable: true },
  5610: { name: 'submit_ sm-or-submit_ multi-failed', retryable: true },
  5620: { name: 'destination-app-error', retryable: true },
  5630: { name: 'message-not-acknowle', retryable: true },
  5650: { name: 'destination-failed', retryable: true },

  // Carrier Errors with Ambiguous Cause: downstream failures whose reason is unknown.
  9902: { name: 'delivery-receipt-expired', retryable: true },
  9999: { name: 'unknown-error', retryable: true },
};

export interface BandwidthErrorClassification {
  retryable: boolean;
  class: 'ResourceError' | 'PermanentError';
  /** The documented machine description, when the code is documented. */
  name: string | undefined;
  /**
   * `undelivered` when the downstream carrier reported it (x7xx, x6xx, 9xxx: the message left Bandwidth),
   * `failed` when Bandwidth itself refused or could not process it.
   */
  status: 'failed' | 'undelivered';
}

/** Classifies a Bandwidth messaging `errorCode`; undocumented codes follow the first digit of the scheme. */
export function classifyBandwidthError(code: number): BandwidthErrorClassification {
  const known = BANDWIDTH_ERROR_CODES[code];
  const first = Math.floor(code / 1000);
  const second = Math.floor(code / 100) % 10;
  const retryable = known ? known.retryable : first === 5 || first === 9;
  const carrier = first === 9 || (first === 4 && second === 7) || (first === 5 && second === 6);
  return {
    retryable,
    class: retryable ? 'ResourceError' : 'PermanentError',
    name: known?.name,
    status: carrier ? 'undelivered' : 'failed',
  };
}

/** The MessageError of a `message-failed` callback: the numeric code as a string, Bandwidth's description. */
export function bandwidthMessageError(code: number, description: string | undefined): MessageError {
  const c = classifyBandwidthError(code);
  const text = description && description.length > 0 ? description : (c.name ?? 'message failed');
  return { code: String(code), class: c.class, message: text };
}
