// Ask: a conversation over a chosen collection; answers stream in, every [n] opens the
// passage it cites with the quoted span highlighted.
import { api, events } from "./api.js";
import { h, isCurrent, nextView, replace } from "./dom.js";
import { describe } from "./errors.js";
import { t } from "./i18n.js";
import { feedbackControls } from "./traces.js";

// The conversation survives navigation inside the console (not a reload).
const state = { collection: "", turns: [] };

export async function renderAsk(main) {
  const current = nextView();
  const collections = await api("/v1/collections").catch(() => []);
  if (!isCurrent(current)) return;
  const select = h(
    "select",
    { id: "ask-collection" },
    h("option", { value: "" }, t("ask.allCollections")),
    collections.map((c) => h("option", { value: c.name, selected: c.name === state.collection }, c.name)),
  );
  select.addEventListener("change", () => (state.collection = select.value));
  const log = h("ol", { id: "conversation", class: "conversation" });
  const question = h("textarea", { id: "question", rows: "2", required: true, "aria-describedby": "ask-hint" });
  const send = h("button", { type: "submit", class: "primary", id: "send" }, t("ask.send"));
  const form = h(
    "form",
    { class: "ask-form" },
    h("label", { for: "question" }, t("ask.question")),
    question,
    h("div", { class: "row between" }, h("span", { class: "hint", id: "ask-hint" }, t("ask.hint")), send),
  );
  const dialog = passageDialog();
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (!text || send.disabled) return;
    question.value = "";
    send.disabled = true;
    const turn = { question: text, answer: "", grounded: true, citations: [], passages: [], done: false };
    state.turns.push(turn);
    const view = turnView(turn, dialog);
    log.append(view.el);
    view.el.scrollIntoView({ block: "end" });
    try {
      await stream(turn, view);
    } catch (err) {
      turn.error = err; // said in the language shown when the turn is drawn
    }
    turn.done = true;
    view.update();
    send.disabled = false;
    question.focus();
  });
  replace(
    main,
    h("h1", {}, t("ask.title")),
    h("div", { class: "row" }, h("label", { class: "field" }, h("span", {}, t("ask.collection")), select)),
    log,
    form,
    dialog,
  );
  for (const turn of state.turns) log.append(turnView(turn, dialog).el);
  question.focus();
}

async function stream(turn, view) {
  const messages = [];
  for (const previous of state.turns) {
    if (previous === turn) break;
    if (!previous.answer) continue;
    messages.push({ role: "user", content: previous.question });
    messages.push({ role: "assistant", content: previous.answer });
  }
  messages.push({ role: "user", content: turn.question });
  const body = { messages, stream: true };
  if (state.collection) body.collections = [state.collection];
  for await (const { event, data } of events("/v1/chat", body)) {
    if (event === "passages") turn.passages = data.passages;
    else if (event === "token") turn.answer += data.text;
    else if (event === "citations") {
      turn.answer = data.answer;
      turn.grounded = data.grounded;
      turn.citations = data.citations;
    } else if (event === "done") turn.traceId = data.trace_id;
    view.update();
  }
}

function turnView(turn, dialog) {
  const answer = h("div", { class: "answer", "aria-live": "polite" });
  const el = h(
    "li",
    { class: "turn" },
    h("p", { class: "question" }, turn.question),
    answer,
  );
  const open = (n) => {
    const citation = turn.citations.find((c) => c.n === n);
    if (citation) dialog.openCitation(citation, turn.passages);
  };
  function update() {
    answer.setAttribute("aria-busy", String(!turn.done));
    const parts = [];
    if (turn.error) parts.push(h("p", { class: "error", role: "alert" }, t("ask.error", { detail: describe(turn.error) })));
    else if (!turn.answer && !turn.done) parts.push(h("p", { class: "hint" }, t("ask.thinking")));
    if (turn.done && !turn.error && !turn.grounded) {
      parts.push(h("p", { class: "not-found", role: "note" }, t("ask.notFound")));
    }
    if (turn.answer) parts.push(h("p", { class: "text" }, withMarkers(turn.answer, turn.citations, open)));
    if (turn.citations.length) {
      parts.push(
        h(
          "div",
          { class: "sources" },
          h("h3", {}, t("ask.sources")),
          h(
            "ol",
            {},
            turn.citations.map((c) => h("li", {}, sourceChip(c, turn.passages, () => open(c.n)))),
          ),
        ),
      );
    }
    if (turn.done && !turn.error && turn.traceId) parts.push(feedbackControls(turn)); // 👍 / 👎
    replace(answer, parts);
  }
  update();
  return { el, update };
}

/** A cited source as a chip: [n], the title, the page and the section it comes from (the
 * innermost heading; the whole path in its tooltip). */
function sourceChip(citation, passages, onclick) {
  const passage = passages.find((p) => p.chunk_id === citation.chunk_id);
  const page = citation.page ?? passage?.page_start;
  const path = passage?.section_path || [];
  return h(
    "button",
    {
      type: "button",
      class: "citation",
      dataset: { n: citation.n },
      title: [citation.title, ...path].join(" › "),
      onclick,
    },
    h("span", { class: "chip-n" }, `[${citation.n}]`),
    " ",
    h("span", { class: "chip-title" }, citation.title),
    page ? h("span", { class: "chip-page" }, t("ask.page", { page })) : null,
    path.length ? h("span", { class: "chip-section" }, path.at(-1)) : null,
  );
}

/** The answer's text with each cited [n] as a button that opens passage n. */
function withMarkers(text, citations, open) {
  const cited = new Set(citations.map((c) => c.n));
  return text.split(/(\[\d+\])/).map((part) => {
    const m = /^\[(\d+)\]$/.exec(part);
    if (!m || !cited.has(Number(m[1]))) return part;
    const n = Number(m[1]);
    return h("button", { type: "button", class: "marker", dataset: { n }, onclick: () => open(n) }, part);
  });
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** ``text`` as nodes with ``quote`` wrapped in <mark>, matched ignoring differences in white
 * space (the quote's sentence had its PDF line breaks joined). */
export function highlight(text, quote) {
  const words = quote.trim().split(/\s+/).filter(Boolean);
  if (!words.length) return [text];
  const pattern = new RegExp(words.map(escapeRegExp).join("\\s+"), "i");
  const m = pattern.exec(text);
  if (!m) return [text];
  return [text.slice(0, m.index), h("mark", {}, m[0]), text.slice(m.index + m[0].length)];
}

function passageDialog() {
  const title = h("h2", { id: "passage-title" });
  const where = h("p", { class: "where" });
  const body = h("blockquote", { id: "passage-text", class: "passage" });
  const link = h("a", { id: "passage-document" }, t("ask.openDoc"));
  const dialog = h(
    "dialog",
    { id: "passage", class: "passage-dialog", "aria-labelledby": "passage-title" },
    h("p", { class: "eyebrow" }, t("ask.passage")),
    title,
    where,
    body,
    h(
      "form",
      { method: "dialog", class: "row between" },
      link,
      h("button", { value: "close", id: "passage-close" }, t("ask.close")),
    ),
  );
  dialog.openCitation = (citation, passages) => {
    const passage = passages.find((p) => p.chunk_id === citation.chunk_id);
    title.textContent = citation.title;
    const page = citation.page ?? passage?.page_start;
    const section = passage?.section_path?.join(" › ") || "";
    where.textContent = [
      `v${citation.version}`,
      page ? t("ask.page", { page }) : "",
      section,
    ]
      .filter(Boolean)
      .join(" · ");
    const highlighted = passage ? highlight(passage.text, citation.quote) : [];
    if (passage && highlighted.length > 1) replace(body, highlighted);
    else replace(body, h("mark", {}, citation.quote), passage ? ["\n\n", passage.text] : []);
    // On its page when the passage has one (the document's page images open there).
    link.href = `#/documents/${encodeURIComponent(citation.document_id)}${page ? `/pages/${page}` : ""}`;
    link.onclick = () => dialog.close();
    dialog.showModal();
  };
  return dialog;
}
