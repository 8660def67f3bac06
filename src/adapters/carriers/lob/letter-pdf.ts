/**
 * Renders a print message (already-rendered subject and body text) as the PDF file of a Lob letter.
 *
 * Layout rules, from Lob's letter documentation:
 * - Every page of a supplied PDF must be 8.5" x 11" (letters `file` attribute, lob/lob-openapi
 *   `resources/letters/models/letter_editable.yml`): US Letter, 612 x 792 pt.
 * - With `address_placement=top_first_page` (the default, which we send) Lob prints the return and recipient
 *   addresses at the top of the first page, where they show through the two windows of the standard #10
 *   double-window envelope (letter_base.yml `address_placement`; Help Center "Letters" and "Letter envelopes").
 *   Our first page therefore starts its text 3.5" from the top: the clear band Lob's own HTML letter example
 *   leaves (`padding-top: 3in; margin: .5in`, letters create request example), which covers both windows
 *   of the tri-folded sheet. Later pages use the normal top margin.
 * - Un-embedded fonts are refused except for Lob's "Standard PDF Fonts" list, which has Helvetica and
 *   Helvetica-Bold: the PDF standard fonts pdfkit writes without embedding (Template Design section).
 *   Those fonts encode text in WinAnsi, so characters outside it are transliterated (accents dropped) or
 *   replaced by `?` rather than printed as the wrong glyph.
 * Margins stay well inside Lob's 1/8" safe zone: 1" left and right, 0.75" bottom, 1" top after page one.
 */
import PDFDocument from 'pdfkit';

const POINTS_PER_INCH = 72;
/** US Letter in points. */
export const LETTER_PAGE = { width: 8.5 * POINTS_PER_INCH, height: 11 * POINTS_PER_INCH } as const;
/** Where the first page's text may start: below the address block Lob prints for the envelope windows. */
export const FIRST_PAGE_CONTENT_TOP = 3.5 * POINTS_PER_INCH;
export const LETTER_MARGINS = {
  top: 1 * POINTS_PER_INCH,
  bottom: 0.75 * POINTS_PER_INCH,
  left: 1 * POINTS_PER_INCH,
  right: 1 * POINTS_PER_INCH,
} as const;

const HEADING_FONT = 'Helvetica-Bold';
const BODY_FONT = 'Helvetica';
const HEADING_SIZE = 14;
const BODY_SIZE = 11;
const FOOTER_SIZE = 8;

export interface LetterContent {
  /** Printed as the heading of the first page (may be empty). */
  subject: string | null;
  /** The letter's text; blank lines separate paragraphs. */
  body: string | null;
  /** Recorded as the PDF's creation date (defaults to now). */
  createdAt?: Date;
}

/** The PDF of a letter: US Letter pages, text set below the address area of the first page. */
export function renderLetterPdf(content: LetterContent): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({
      size: 'LETTER',
      margins: { ...LETTER_MARGINS },
      bufferPages: true,
      info: {
        Title: winAnsi(content.subject ?? '').slice(0, 200) || 'Letter',
        Producer: 'Omnichannel',
        CreationDate: content.createdAt ?? new Date(),
      },
    });
    const chunks: Buffer[] = [];
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    try {
      const width = LETTER_PAGE.width - LETTER_MARGINS.left - LETTER_MARGINS.right;
      doc.y = FIRST_PAGE_CONTENT_TOP;
      const heading = winAnsi(content.subject ?? '').trim();
      if (heading.length > 0) {
        doc.font(HEADING_FONT).fontSize(HEADING_SIZE).text(heading, LETTER_MARGINS.left, doc.y, { width });
        doc.moveDown(0.8);
      }
      doc.font(BODY_FONT).fontSize(BODY_SIZE);
      const paragraphs = winAnsi(content.body ?? '')
        .split(/\n{2,}/)
        .map((p) => p.replace(/\s+$/, ''))
        .filter((p) => p.trim().length > 0);
      for (const paragraph of paragraphs) {
        doc.text(paragraph, LETTER_MARGINS.left, doc.y, { width, lineGap: 2 });
        doc.moveDown(0.6);
      }
      const range = doc.bufferedPageRange();
      if (range.count > 1) {
        for (let i = range.start; i < range.start + range.count; i++) {
          doc.switchToPage(i);
          // Writing inside the bottom margin: lift the margin so pdfkit does not start a new page.
          const bottom = doc.page.margins.bottom;
          doc.page.margins.bottom = 0;
          doc
            .font(BODY_FONT)
            .fontSize(FOOTER_SIZE)
            .text(
              `Page ${i - range.start + 1} of ${range.count}`,
              LETTER_MARGINS.left,
              LETTER_PAGE.height - LETTER_MARGINS.bottom + FOOTER_SIZE,
              { width, align: 'right', lineBreak: false, height: FOOTER_SIZE * 2 },
            );
          doc.page.margins.bottom = bottom;
        }
      }
      doc.end();
    } catch (err) {
      reject(err);
    }
  });
}

/** Characters WinAnsiEncoding has beyond Latin-1 (0x80-0x9F). */
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

function isWinAnsi(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  return (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.has(ch);
}

/**
 * Text the standard fonts can print: line breaks normalized, tabs as spaces, other control characters
 * dropped, characters outside WinAnsi transliterated without their accents (ł, ő...) or replaced by `?`.
 */
export function winAnsi(text: string): string {
  let out = '';
  for (const ch of text.replace(/\r\n?/g, '\n').replace(/\t/g, '    ')) {
    if (ch === '\n' || isWinAnsi(ch)) {
      out += ch;
      continue;
    }
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x20 || (code >= 0x7f && code < 0xa0)) continue;
    const base = ch.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
    out += base.length > 0 && [...base].every(isWinAnsi) ? base : (TRANSLITERATIONS[ch] ?? '?');
  }
  return out;
}

/** Letters that do not decompose into a base letter plus accents. */
const TRANSLITERATIONS: Readonly<Record<string, string>> = {
  ł: 'l',
  Ł: 'L',
  đ: 'd',
  Đ: 'D',
  ħ: 'h',
  Ħ: 'H',
  ı: 'i',
  ŀ: 'l',
  Ŀ: 'L',
  ŧ: 't',
  Ŧ: 'T',
  '\u2032': "'",
  '\u2033': '"',
  '\u2212': '-',
  '\u2010': '-',
  '\u2011': '-',
};
