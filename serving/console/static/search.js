// Search inside the documents: POST /v1/search, each passage shown with its document, page and
// section, and the query's words marked in its text. Marks are found here, in the browser, from
// the query: accents and case ignored ("conges" marks "congés"), plural and feminine endings too
// ("salarié" marks "salariées"). Passages are text nodes only: never parsed as HTML.
import { api } from "./api.js";
import { describe } from "./errors.js";
import { h, replace } from "./dom.js";
import { formatNumber, t } from "./i18n.js";

const WORD = /[\p{L}\p{N}]+/gu;
// Words too common to be worth a mark, in the two languages of the console.
const STOPWORDS = new Set(
  (
    "les des une est pour que qui dans par sur avec son ses aux ces cette mon mes nous vous ils " +
    "elles pas plus quel quelle quels quelles comment combien quand pourquoi faut peut dois " +
    "être avoir fait entre sans sous the and for are was were with what how who when where " +
    "which this that from does can will have has"
  ).split(" "),
);
// "conges" and "congés" are one word; so are "salarié", "salariée" and "salariés".
const SUFFIX = /(?:es|s|x|e)$/;
const MAX_SUFFIX = 3; // a marked word may be its stem plus at most 3 letters ("-ées")
const SNIPPET = 480; // characters shown of a passage (a chunk is ~200 words, ~1,300 characters)

export function fold(word) {
  return word.normalize("NFD").replace(/\p{M}+/gu, "").toLowerCase();
}

/** The stems to mark for ``query``: words of 3 letters or more that are not stopwords, and
 * numbers. */
export function queryStems(query) {
  const stems = new Set();
  for (const word of query.match(WORD) || []) {
    const folded = fold(word);
    if (/^\d+$/.test(folded)) stems.add(folded);
    else if (folded.length >= 3 && !STOPWORDS.has(folded)) {
      stems.add(folded.length > 4 ? folded.replace(SUFFIX, "") : folded);
    }
  }
  return [...stems];
}

function marks(word, stems) {
  const folded = fold(word);
  return stems.some((stem) =>
    /^\d+$/.test(stem)
      ? folded === stem
      : folded.startsWith(stem) && folded.length - stem.length <= MAX_SUFFIX,
  );
}

/** ``text`` as nodes, each word that matches one of ``stems`` in a <mark>; cut to about
 * ``SNIPPET`` characters around the first mark when longer. */
export function highlightTerms(text, stems, limit = SNIPPET) {
  const words = [...text.matchAll(WORD)].filter((m) => marks(m[0], stems));
  let start = 0;
  let end = text.length;
  if (text.length > limit) {
    const first = words.length ? words[0].index : 0;
    start = Math.max(0, first - Math.floor(limit / 4));
    // Cut between words: at the first space after ``start`` (before the first mark) ...
    const after = text.indexOf(" ", start);
    if (start > 0 && after >= 0 && after < first) start = after + 1;
    end = Math.min(text.length, start + limit);
    // ... and at the last space before ``end``.
    const before = text.lastIndexOf(" ", end);
    if (end < text.length && before > start) end = before;
  }
  const nodes = start > 0 ? ["… "] : [];
  let at = start;
  for (const m of words) {
    if (m.index < start || m.index + m[0].length > end) continue;
    nodes.push(text.slice(at, m.index), h("mark", {}, m[0]));
    at = m.index + m[0].length;
  }
  nodes.push(text.slice(at, end));
  if (end < text.length) nodes.push(" …");
  return nodes.filter((n) => n !== "");
}

// The last search survives navigation inside the console (its passages are shown again).
const state = { query: "", passages: null, error: null };
let latest = 0;

function where(passage) {
  const page = passage.page_start;
  return [page ? t("ask.page", { page }) : "", (passage.section_path || []).join(" › ")]
    .filter(Boolean)
    .join(" · ");
}

/** The passage's text without the section-path line the chunker puts first ("Guide >
 * Congés", outer titles dropped when long): the hit's header shows the section already. */
function body(passage) {
  const path = passage.section_path || [];
  const end = passage.text.indexOf("\n");
  const first = end < 0 ? "" : passage.text.slice(0, end);
  const isPath = path.some((_, i) => path.slice(i).join(" > ") === first);
  return first && isPath ? passage.text.slice(end + 1) : passage.text;
}

function hit(passage, stems) {
  return h(
    "li",
    { class: "hit", dataset: { document: passage.document_id, chunk: passage.chunk_id } },
    h(
      "div",
      { class: "row between" },
      h("a", { href: `#/documents/${encodeURIComponent(passage.document_id)}`, class: "hit-title" }, passage.title),
      h("span", { class: "where" }, where(passage)),
    ),
    h("p", { class: "snippet" }, highlightTerms(body(passage), stems)),
  );
}

/** The search card; ``scope()`` gives the list's current filters ({collection, tag}). */
export function contentSearch(scope) {
  const input = h("input", { id: "content-query", type: "search", value: state.query, required: true });
  const status = h("p", { id: "content-status", class: "hint", "aria-live": "polite" });
  const list = h("ol", { id: "passages", class: "hits" });
  const show = () => {
    if (state.error) {
      replace(status, h("span", { class: "error", role: "alert" }, t("error.generic", { detail: describe(state.error) })));
      replace(list);
      return;
    }
    if (state.passages === null) {
      replace(status);
      replace(list);
      return;
    }
    status.textContent = state.passages.length
      ? t("docs.contentCount", { n: formatNumber(state.passages.length) })
      : t("docs.contentNone");
    const stems = queryStems(state.query);
    replace(list, state.passages.map((p) => hit(p, stems)));
  };
  const form = h(
    "form",
    { class: "row", role: "search", id: "content-search", "aria-labelledby": "content-title" },
    h("label", { class: "field grow" }, h("span", {}, t("docs.contentQuery")), input),
    h("button", { type: "submit", class: "primary", id: "content-send" }, t("docs.contentSend")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const query = input.value.trim();
    if (!query) return;
    const request = ++latest;
    status.textContent = t("docs.searching");
    const { collection, tag } = scope();
    const body = { query, top_k: 10 };
    if (collection) body.collections = [collection];
    if (tag) body.tags = [tag];
    let passages = null;
    let error = null;
    try {
      passages = (await api("/v1/search", { method: "POST", json: body })).passages;
    } catch (err) {
      error = err;
    }
    if (request !== latest) return; // a newer search was sent meanwhile
    Object.assign(state, { query, passages, error });
    if (form.isConnected) show();
  });
  show();
  return h(
    "section",
    { class: "card", "aria-labelledby": "content-title" },
    h("h2", { id: "content-title" }, t("docs.content")),
    form,
    status,
    list,
  );
}
