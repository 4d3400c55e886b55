// The API's errors in the page's language. The API answers {"error": code, "detail": text}
// with the text in English; a job's cause is such a text alone. The texts the server writes
// for the errors a user meets (upload refused, document unreadable, key refused, ...) are
// matched here and said again in French or English; any other text keeps the server's words
// after a translated reason chosen by its code.
import { formatBytes, formatNumber, t } from "./i18n.js";

const quoted = "(['\"])(?<name>.+)\\1"; // Python's repr() of a name: 'a.pdf', or "l'a.pdf"
const int = (v) => formatNumber(Number(v));

// [pattern on the server's text, label, how to show some of its groups]
const DETAILS = [
  [/^invalid or revoked API key$/, "err.badKey"],
  [new RegExp(`^${quoted} is empty(?:;|$)`), "err.emptyFile"],
  [new RegExp(`^${quoted} is larger than the (?<max>\\d+) byte limit$`), "err.uploadTooLarge", { max: (v) => formatBytes(Number(v)) }],
  // core.media's reasons for refusing a file (the API adds "; supported: <the list>")
  [new RegExp(`^${quoted} is a (?<kind>\\S+) image: gedrag reads scans`), "err.image"],
  [new RegExp(`^${quoted} is a legacy Office file`), "err.legacyOffice"],
  [new RegExp(`^${quoted} is a gzip archive`), "err.gzip"],
  [new RegExp(`^${quoted} is a zip archive but not`), "err.zipNotDocument"],
  [new RegExp(`^${quoted} is named as an image, audio, video, archive or program \\((?<ext>[^)]+)\\)`), "err.notDocumentName"],
  [new RegExp(`^${quoted} is named as a format gedrag does not read \\((?<ext>[^)]+)\\)`), "err.unreadFormat"],
  [new RegExp(`^${quoted} is named as (?<kind>.+?) but is not one`), "err.misnamed"],
  [new RegExp(`^${quoted} holds binary data`), "err.binary"],
  [/^unsupported media type '(?<type>.+)'$/, "err.unsupportedType"],
  [/^empty (?<label>.+) file$/, "err.emptyOfType"],
  [/^no extractable text; OCR not enabled$/, "err.noText"],
  [/^no extractable text: OCR found no legible text/, "err.noTextOcr"],
  [/^this (?<label>.+) image can only be read by OCR, which is off/, "err.ocrOff"],
  [/^too large(?: once parsed)?: (?<n>\d+) pages > max_pages=(?<max>\d+)$/, "err.tooManyPages", { n: int, max: int }],
  [/^too large: (?<n>\d+) slides > max_pages=(?<max>\d+)$/, "err.tooManySlides", { n: int, max: int }],
  [/^too large: about (?<n>\d+) pages \(.*\) > max_pages=(?<max>\d+)$/, "err.aboutPages", { n: int, max: int }],
  [/^too large(?: once parsed)?: (?<n>\d+) characters > max_chars=(?<max>\d+)$/, "err.tooManyChars", { n: int, max: int }],
  [/^encrypted (?<label>.+): a password is required$/, "err.encrypted"],
  [/^(?<label>\S+) archive expands too much/, "err.zipBomb"],
  [/^corrupt or unreadable (?<label>\S+): (?<why>.+)$/, "err.corrupt"],
  [/^identical content already exists in collection '(?<collection>.+)' as document \S+$/, "err.duplicate"],
  [/^document \S+ is being deleted$/, "err.beingDeleted"],
  [/^no document with id /, "err.noDocument"],
  [/^collection '(?<name>.+)' already exists$/, "err.collectionExists"],
  [/^tag '(?<tag>.*)' is invalid \(1-(?<max>\d+) printable\)$/, "err.badTag"],
  [/^at most (?<max>\d+) tags per document$/, "err.tooManyTags"],
  [/^tenant '(?<tenant>.+)' may not /, "err.notAllowed"],
  [/concurrently; retry$/, "err.concurrent"],
  [/^an evaluation is already running/, "err.evalRunning"],
  [/^no suite named '(?<name>[^']+)'/, "err.noSuite"],
  [/^no release '(?<name>[^']+)'/, "err.noRelease"],
];

// Pydantic's messages for the request bodies the console sends ("title: String should ...").
const FIELD_MESSAGES = [
  [/^Field required$/, "err.fieldRequired"],
  [/^String should have at least 1 character$/, "err.fieldEmpty"],
  [/^String should have at least (?<n>\d+) characters?$/, "err.fieldShort"],
  [/^String should have at most (?<n>\d+) characters?$/, "err.fieldLong"],
  [/^Input should be a valid list$/, "err.fieldList"],
  [/^Input should be a valid dictionary/, "err.fieldObject"],
];

// Fields of the request bodies and forms the console sends, by the labels the page shows.
const FIELD_LABELS = {
  title: "docs.col.title",
  tags: "docs.col.tags",
  metadata: "doc.metadata",
  collection: "docs.collection",
  file: "doc.file",
  query: "docs.contentQuery",
  release: "rel.release",
  suite: "rel.suite",
};

function match(table, text) {
  for (const [pattern, key, shown = {}] of table) {
    const m = pattern.exec(text);
    if (!m) continue;
    const vars = { ...(m.groups || {}) };
    for (const [name, show] of Object.entries(shown)) vars[name] = show(vars[name]);
    return t(key, vars);
  }
  return null;
}

/** A cause as the server wrote it (a job's ``error``, an API error's ``detail``), in the
 * page's language when it is one the console knows; else null. */
export function translateDetail(text) {
  if (!text) return null;
  const retrying = /^retrying after: (.+)$/s.exec(text);
  if (retrying) return t("err.retrying", { cause: translateDetail(retrying[1]) ?? retrying[1] });
  return match(DETAILS, text);
}

/** An ApiError (status, code, detail) in the page's language. */
export function describe(err) {
  if (!err || err.status === undefined) return String(err?.message ?? err ?? "");
  const detail = err.detail && err.detail !== err.code ? err.detail : "";
  const known = translateDetail(detail);
  if (known) return known;
  const field = /^(?<field>[\w.]+): (?<message>.+)$/.exec(detail);
  if (err.code === "invalid_input" && field) {
    const message = match(FIELD_MESSAGES, field.groups.message) ?? field.groups.message;
    const label = FIELD_LABELS[field.groups.field];
    return t("err.field", { field: label ? t(label) : field.groups.field, message });
  }
  const label = `err.code.${err.code}`;
  const reason = err.code && t(label) !== label ? t(label) : t("err.status", { status: err.status });
  return detail ? t("err.withDetail", { reason, detail }) : reason;
}

/** A job's or version's recorded cause, in the page's language when known. */
export function describeCause(text) {
  return translateDetail(text) ?? text;
}
