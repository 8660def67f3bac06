/**
 * Every carrier provider this build can send through, by id. The composition root hands this map to the carrier
 * registry; the senders API validates sender configs against each provider's schema.
 */
import { bandwidthProvider } from '../adapters/carriers/bandwidth/bandwidth-carrier.ts';
import { inteliquentProvider } from '../adapters/carriers/inteliquent/inteliquent-carrier.ts';
import { lobProvider } from '../adapters/carriers/lob/lob-carrier.ts';
import { messageBirdProvider } from '../adapters/carriers/messagebird/messagebird-carrier.ts';
import { sandboxProvider } from '../adapters/carriers/sandbox-carrier.ts';
import { smtpProvider } from '../adapters/carriers/smtp/smtp-carrier.ts';
import { twilioProvider } from '../adapters/carriers/twilio/twilio-carrier.ts';
import { webPushProvider } from '../adapters/carriers/webpush/webpush-carrier.ts';
import { whatsAppProvider } from '../adapters/carriers/whatsapp/whatsapp-carrier.ts';
import type { ProviderDefinition } from '../ports/carrier.ts';

export function carrierProviders(opts: { sandboxUrl: () => string }): Map<string, ProviderDefinition> {
  const list: ProviderDefinition[] = [
    sandboxProvider(opts.sandboxUrl),
    twilioProvider,
    bandwidthProvider,
    messageBirdProvider,
    inteliquentProvider,
    whatsAppProvider,
    smtpProvider,
    webPushProvider,
    lobProvider,
  ];
  return new Map(list.map((p) => [p.id, p]));
}
