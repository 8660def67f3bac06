/**
 * A contact's time zone when none was given: derived from their phone number. The country comes from
 * libphonenumber-js; a country with one zone (most of them) gives it. For the big multi-zone countries the number's
 * geographic prefix narrows it down where it says enough: the area code in the US and Canada (mobile numbers keep
 * geographic area codes there), the DDD in Brazil, the area code in Mexico and Australia's landline prefix.
 *
 * Limits: elsewhere a multi-zone country gets its most populous zone (Russia → Moscow, Indonesia → Jakarta,
 * Kazakhstan → Almaty, ...), and so do Australian mobiles (→ Sydney) and area codes the table does not know (new
 * overlays: the US falls back to New York, Canada to Toronto). An area code that straddles a zone line gets its
 * majority's zone (Florida's 850 → Central, Indiana's 812 → Eastern). A zone given explicitly always wins.
 */

import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { IANAZone } from 'luxon';
import { memoize } from './memo.ts';

/** luxon builds an Intl.DateTimeFormat to answer (~50 µs); the set of zones is small, so answers are kept. */
export const isValidTimeZone = memoize((zone) => IANAZone.isValidZone(zone), 10_000);

/** One zone per ISO 3166 country: the only one, or the most populous (`CC:Zone` pairs, from tzdata's zone.tab). */
const COUNTRY_ZONE_PAIRS = [
  'AC:Atlantic/St_Helena AD:Europe/Andorra AE:Asia/Dubai AF:Asia/Kabul AG:America/Antigua',
  'AI:America/Anguilla AL:Europe/Tirane AM:Asia/Yerevan AO:Africa/Luanda AQ:Antarctica/McMurdo',
  'AR:America/Argentina/Buenos_Aires AS:Pacific/Pago_Pago AT:Europe/Vienna AU:Australia/Sydney',
  'AW:America/Aruba AX:Europe/Mariehamn AZ:Asia/Baku BA:Europe/Sarajevo BB:America/Barbados BD:Asia/Dhaka',
  'BE:Europe/Brussels BF:Africa/Ouagadougou BG:Europe/Sofia BH:Asia/Bahrain BI:Africa/Bujumbura',
  'BJ:Africa/Porto-Novo BL:America/St_Barthelemy BM:Atlantic/Bermuda BN:Asia/Brunei BO:America/La_Paz',
  'BQ:America/Kralendijk BR:America/Sao_Paulo BS:America/Nassau BT:Asia/Thimphu BW:Africa/Gaborone',
  'BY:Europe/Minsk BZ:America/Belize CA:America/Toronto CC:Indian/Cocos CD:Africa/Kinshasa CF:Africa/Bangui',
  'CG:Africa/Brazzaville CH:Europe/Zurich CI:Africa/Abidjan CK:Pacific/Rarotonga CL:America/Santiago',
  'CM:Africa/Douala CN:Asia/Shanghai CO:America/Bogota CR:America/Costa_Rica CU:America/Havana',
  'CV:Atlantic/Cape_Verde CW:America/Curacao CX:Indian/Christmas CY:Asia/Nicosia CZ:Europe/Prague',
  'DE:Europe/Berlin DJ:Africa/Djibouti DK:Europe/Copenhagen DM:America/Dominica DO:America/Santo_Domingo',
  'DZ:Africa/Algiers EC:America/Guayaquil EE:Europe/Tallinn EG:Africa/Cairo EH:Africa/El_Aaiun',
  'ER:Africa/Asmara ES:Europe/Madrid ET:Africa/Addis_Ababa FI:Europe/Helsinki FJ:Pacific/Fiji',
  'FK:Atlantic/Stanley FM:Pacific/Pohnpei FO:Atlantic/Faroe FR:Europe/Paris GA:Africa/Libreville',
  'GB:Europe/London GD:America/Grenada GE:Asia/Tbilisi GF:America/Cayenne GG:Europe/Guernsey GH:Africa/Accra',
  'GI:Europe/Gibraltar GL:America/Nuuk GM:Africa/Banjul GN:Africa/Conakry GP:America/Guadeloupe',
  'GQ:Africa/Malabo GR:Europe/Athens GS:Atlantic/South_Georgia GT:America/Guatemala GU:Pacific/Guam',
  'GW:Africa/Bissau GY:America/Guyana HK:Asia/Hong_Kong HN:America/Tegucigalpa HR:Europe/Zagreb',
  'HT:America/Port-au-Prince HU:Europe/Budapest ID:Asia/Jakarta IE:Europe/Dublin IL:Asia/Jerusalem',
  'IM:Europe/Isle_of_Man IN:Asia/Kolkata IO:Indian/Chagos IQ:Asia/Baghdad IR:Asia/Tehran IS:Atlantic/Reykjavik',
  'IT:Europe/Rome JE:Europe/Jersey JM:America/Jamaica JO:Asia/Amman JP:Asia/Tokyo KE:Africa/Nairobi',
  'KG:Asia/Bishkek KH:Asia/Phnom_Penh KI:Pacific/Tarawa KM:Indian/Comoro KN:America/St_Kitts',
  'KP:Asia/Pyongyang KR:Asia/Seoul KW:Asia/Kuwait KY:America/Cayman KZ:Asia/Almaty LA:Asia/Vientiane',
  'LB:Asia/Beirut LC:America/St_Lucia LI:Europe/Vaduz LK:Asia/Colombo LR:Africa/Monrovia LS:Africa/Maseru',
  'LT:Europe/Vilnius LU:Europe/Luxembourg LV:Europe/Riga LY:Africa/Tripoli MA:Africa/Casablanca',
  'MC:Europe/Monaco MD:Europe/Chisinau ME:Europe/Podgorica MF:America/Marigot MG:Indian/Antananarivo',
  'MH:Pacific/Majuro MK:Europe/Skopje ML:Africa/Bamako MM:Asia/Yangon MN:Asia/Ulaanbaatar MO:Asia/Macau',
  'MP:Pacific/Saipan MQ:America/Martinique MR:Africa/Nouakchott MS:America/Montserrat MT:Europe/Malta',
  'MU:Indian/Mauritius MV:Indian/Maldives MW:Africa/Blantyre MX:America/Mexico_City MY:Asia/Kuala_Lumpur',
  'MZ:Africa/Maputo NA:Africa/Windhoek NC:Pacific/Noumea NE:Africa/Niamey NF:Pacific/Norfolk NG:Africa/Lagos',
  'NI:America/Managua NL:Europe/Amsterdam NO:Europe/Oslo NP:Asia/Kathmandu NR:Pacific/Nauru NU:Pacific/Niue',
  'NZ:Pacific/Auckland OM:Asia/Muscat PA:America/Panama PE:America/Lima PF:Pacific/Tahiti',
  'PG:Pacific/Port_Moresby PH:Asia/Manila PK:Asia/Karachi PL:Europe/Warsaw PM:America/Miquelon',
  'PN:Pacific/Pitcairn PR:America/Puerto_Rico PS:Asia/Hebron PT:Europe/Lisbon PW:Pacific/Palau',
  'PY:America/Asuncion QA:Asia/Qatar RE:Indian/Reunion RO:Europe/Bucharest RS:Europe/Belgrade',
  'RU:Europe/Moscow RW:Africa/Kigali SA:Asia/Riyadh SB:Pacific/Guadalcanal SC:Indian/Mahe SD:Africa/Khartoum',
  'SE:Europe/Stockholm SG:Asia/Singapore SH:Atlantic/St_Helena SI:Europe/Ljubljana SJ:Arctic/Longyearbyen',
  'SK:Europe/Bratislava SL:Africa/Freetown SM:Europe/San_Marino SN:Africa/Dakar SO:Africa/Mogadishu',
  'SR:America/Paramaribo SS:Africa/Juba ST:Africa/Sao_Tome SV:America/El_Salvador SX:America/Lower_Princes',
  'SY:Asia/Damascus SZ:Africa/Mbabane TA:Atlantic/St_Helena TC:America/Grand_Turk TD:Africa/Ndjamena',
  'TF:Indian/Kerguelen TG:Africa/Lome TH:Asia/Bangkok TJ:Asia/Dushanbe TK:Pacific/Fakaofo TL:Asia/Dili',
  'TM:Asia/Ashgabat TN:Africa/Tunis TO:Pacific/Tongatapu TR:Europe/Istanbul TT:America/Port_of_Spain',
  'TV:Pacific/Funafuti TW:Asia/Taipei TZ:Africa/Dar_es_Salaam UA:Europe/Kyiv UG:Africa/Kampala',
  'UM:Pacific/Wake US:America/New_York UY:America/Montevideo UZ:Asia/Tashkent VA:Europe/Vatican',
  'VC:America/St_Vincent VE:America/Caracas VG:America/Tortola VI:America/St_Thomas VN:Asia/Ho_Chi_Minh',
  'VU:Pacific/Efate WF:Pacific/Wallis WS:Pacific/Apia XK:Europe/Belgrade YE:Asia/Aden YT:Indian/Mayotte',
  'ZA:Africa/Johannesburg ZM:Africa/Lusaka ZW:Africa/Harare',
];

/** North American area codes (US and Canada) by zone; codes not listed fall back to the country's zone. */
const NANP_ZONE_CODES: readonly (readonly [zone: string, codes: string])[] = [
  [
    'America/New_York',
    '203 475 860 959 302 202 771 239 305 321 324 352 386 407 561 645 656 689 727 728 754 772 786 813 863 904 941 954 ' +
      '229 404 470 478 678 706 762 770 912 943 260 317 463 574 765 812 930 502 606 859 207 227 240 301 410 443 667 ' +
      '339 351 413 508 617 774 781 857 978 231 248 269 313 517 586 616 679 734 810 906 947 989 603 201 551 609 640 ' +
      '732 848 856 862 908 973 212 315 329 332 347 363 516 518 585 607 624 631 646 680 716 718 838 845 914 917 929 ' +
      '934 252 336 472 704 743 828 910 919 980 984 216 220 234 283 326 330 380 419 436 440 513 567 614 740 937 215 ' +
      '223 267 272 412 445 484 570 582 610 717 724 814 835 878 401 803 821 839 843 854 864 423 865 802 276 434 540 ' +
      '571 686 703 757 804 826 948 304 681',
  ],
  [
    'America/Chicago',
    '205 251 256 334 483 659 938 327 479 501 870 217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 861 ' +
      '872 219 319 515 563 641 712 316 620 785 913 270 364 225 318 337 457 504 985 218 320 507 612 651 763 924 952 ' +
      '228 601 662 769 235 314 417 557 573 636 660 816 308 402 531 701 605 405 539 572 580 918 615 629 731 901 931 ' +
      '210 214 254 281 325 346 361 409 430 432 469 512 621 682 713 726 737 806 817 830 832 903 936 940 945 956 972 ' +
      '979 262 274 353 414 534 608 715 920 448 850',
  ],
  ['America/Denver', '303 719 720 970 983 406 505 575 385 435 801 307 915'],
  ['America/Boise', '208 986'],
  ['America/Phoenix', '480 520 602 623 928'],
  [
    'America/Los_Angeles',
    '209 213 279 310 323 341 350 357 369 408 415 424 442 510 530 559 562 619 626 628 650 657 661 669 707 714 738 ' +
      '747 760 805 818 820 831 837 840 858 909 916 925 949 951 702 725 775 458 503 541 971 206 253 360 425 509 564',
  ],
  ['America/Anchorage', '907'],
  ['Pacific/Honolulu', '808'],
  [
    'America/Toronto',
    '226 249 289 343 365 382 387 416 437 519 548 613 647 683 705 742 753 807 905 942 263 354 367 418 438 450 468 ' +
      '514 579 581 819 873',
  ],
  ['America/Halifax', '428 506 782 902'],
  ['America/St_Johns', '709 879'],
  ['America/Winnipeg', '204 431 584'],
  ['America/Regina', '306 474 639'],
  ['America/Edmonton', '368 403 587 780 825 867'],
  ['America/Vancouver', '236 250 257 604 672 778'],
];

/** Leading digits of the national number → zone, per country (longest prefix wins). */
const PREFIX_ZONES: Record<string, readonly (readonly [prefix: string, zone: string])[]> = {
  // Landlines: 2 NSW/ACT, 3 VIC (36 TAS), 7 QLD, 8 SA/NT/WA (889 NT; 86 and 89 WA). Mobiles (4) are not geographic.
  AU: [
    ['2', 'Australia/Sydney'],
    ['3', 'Australia/Melbourne'],
    ['36', 'Australia/Hobart'],
    ['7', 'Australia/Brisbane'],
    ['8', 'Australia/Adelaide'],
    ['86', 'Australia/Perth'],
    ['89', 'Australia/Perth'],
    ['889', 'Australia/Darwin'],
  ],
  // DDD area codes (kept by mobiles); everything not listed is on Brasília time.
  BR: [
    ['65', 'America/Cuiaba'],
    ['66', 'America/Cuiaba'],
    ['67', 'America/Campo_Grande'],
    ['68', 'America/Rio_Branco'],
    ['69', 'America/Porto_Velho'],
    ['92', 'America/Manaus'],
    ['97', 'America/Manaus'],
    ['95', 'America/Boa_Vista'],
  ],
  // Area codes of the states off Central time (mobiles keep them); the rest is Mexico City.
  MX: [
    ['664', 'America/Tijuana'],
    ['665', 'America/Tijuana'],
    ['686', 'America/Tijuana'],
    ['646', 'America/Tijuana'],
    ['662', 'America/Hermosillo'],
    ['644', 'America/Hermosillo'],
    ['631', 'America/Hermosillo'],
    ['622', 'America/Hermosillo'],
    ['653', 'America/Hermosillo'],
    ['612', 'America/Mazatlan'],
    ['624', 'America/Mazatlan'],
    ['669', 'America/Mazatlan'],
    ['667', 'America/Mazatlan'],
    ['668', 'America/Mazatlan'],
    ['311', 'America/Mazatlan'],
    ['614', 'America/Chihuahua'],
    ['656', 'America/Ciudad_Juarez'],
    ['998', 'America/Cancun'],
    ['984', 'America/Cancun'],
    ['983', 'America/Cancun'],
  ],
};

const COUNTRY_ZONE = new Map<string, string>(
  COUNTRY_ZONE_PAIRS.flatMap((line) =>
    line.split(' ').map((pair) => {
      const colon = pair.indexOf(':');
      return [pair.slice(0, colon), pair.slice(colon + 1)] as [string, string];
    }),
  ),
);

const NANP_ZONE = new Map<string, string>(
  NANP_ZONE_CODES.flatMap(([zone, codes]) => codes.split(' ').map((code) => [code, zone] as [string, string])),
);

/** The zone of a country (ISO 3166-1 alpha-2), or null when unknown. */
export function timeZoneOfCountry(country: string): string | null {
  return COUNTRY_ZONE.get(country) ?? null;
}

/**
 * The most likely IANA zone of an E.164 number's holder, or null when the number cannot be parsed or its country
 * is unknown. Every zone returned is checked with luxon (an unknown one gives null rather than a bad zone).
 */
export const timeZoneForPhone = memoize((e164) => deriveTimeZone(e164), 50_000);

function deriveTimeZone(e164: string): string | null {
  const parsed = parsePhoneNumberFromString(e164);
  const country = parsed?.country;
  if (!parsed || !country) return null;
  const national = parsed.nationalNumber;
  let zone: string | null = null;
  if (country === 'US' || country === 'CA') zone = NANP_ZONE.get(national.slice(0, 3)) ?? null;
  const prefixes = PREFIX_ZONES[country];
  if (!zone && prefixes) {
    let best = '';
    for (const [prefix, z] of prefixes) {
      if (national.startsWith(prefix) && prefix.length > best.length) {
        best = prefix;
        zone = z;
      }
    }
  }
  zone ??= timeZoneOfCountry(country);
  return zone && isValidTimeZone(zone) ? zone : null;
}

/** For tests: every zone the tables can produce. */
export function allDerivableZones(): string[] {
  return [
    ...new Set([
      ...COUNTRY_ZONE.values(),
      ...NANP_ZONE.values(),
      ...Object.values(PREFIX_ZONES).flatMap((list) => list.map(([, z]) => z)),
    ]),
  ];
}

/** For tests: area codes listed under more than one zone (must be none). */
export function duplicateAreaCodes(): string[] {
  const seen = new Set<string>();
  const dup: string[] = [];
  for (const [, codes] of NANP_ZONE_CODES) {
    for (const c of codes.split(' ')) {
      if (seen.has(c)) dup.push(c);
      seen.add(c);
    }
  }
  return dup;
}
