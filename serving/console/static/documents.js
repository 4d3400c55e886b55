// Documents: drag-and-drop upload with live ingestion status, search inside the documents, the
// filtered list, one document's detail (versions, counts, a failure's cause, download, new
// version, edit title, tags and metadata, delete, its pages and a scan's searchable PDF).
import { api, download, upload } from "./api.js";
import { badge, h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe, describeCause } from "./errors.js";
import { formatBytes, formatDate, formatNumber, t } from "./i18n.js";
import { accessCard } from "./people.js";
import { contentSearch } from "./search.js";

const POLL_MS = 600;
// A drop of 100 files must not send 100 uploads at once nor poll 100 jobs every 600 ms: three
// uploads in flight, and each job polled less often the more jobs are followed (~20 req/s max).
const PARALLEL_UPLOADS = 3;
let following = 0;
const filters = { collection: "", tag: "", status: "", title: "" };
const uploadForm = { collection: "default", tags: "" };
// Uploads survive navigation inside the console: the list below the drop zone is this array.
const uploads = [];
let uploadSeq = 0;

// The pipeline's finer stages, shown as the phases a user cares about. "loading model": the
// first ingestion after a start waits for the embedding model (~7 s, ~30 s on a busy machine).
const PHASES = {
  parsing: "parsing",
  chunking: "parsing",
  "loading model": "loading",
  indexing: "indexing",
  // Findable by its words already; its meaning vectors are being computed (progressive indexing).
  searchable: "searchable",
  embedding: "searchable",
  removing: "removing",
};

function jobStatus(job) {
  if (job.state === "succeeded") return job.kind === "delete" ? "removing" : "ready";
  if (job.state === "failed") return "failed";
  if (job.state === "queued") return "queued";
  return PHASES[job.stage] || "processing";
}

/** Follow a job until it finishes, calling ``onUpdate(job)`` on each change. */
export async function followJob(jobId, onUpdate) {
  let last = "";
  following += 1;
  try {
    for (;;) {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      const key = `${job.state}/${job.stage}/${job.progress}`;
      if (key !== last) onUpdate(job);
      last = key;
      if (job.state === "succeeded" || job.state === "failed") return job;
      const delay = Math.max(POLL_MS, following * 50);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } finally {
    following -= 1;
  }
}

// -- uploads ----------------------------------------------------------------------------------

const waiting = [];
let sending = 0;

function startUploads(files) {
  for (const file of files) {
    // ``error`` (an ApiError) or ``cause`` (a job's text) is said in the language shown when
    // the row is drawn, not when it happened.
    const item = { id: ++uploadSeq, name: file.name, progress: 0, status: "uploading", error: null, cause: "" };
    uploads.unshift(item);
    waiting.push([item, file]);
  }
  renderUploads();
  pump();
}

function pump() {
  while (sending < PARALLEL_UPLOADS && waiting.length) {
    const [item, file] = waiting.shift();
    sending += 1;
    runUpload(item, file, () => {
      sending -= 1;
      pump();
    });
  }
}

/** Send one file, then follow its ingestion job; ``sent`` frees the upload slot as soon as the
 * bytes are in (following the job needs no slot). */
async function runUpload(item, file, sent) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("collection", uploadForm.collection.trim() || "default");
  if (uploadForm.tags.trim()) form.append("tags", uploadForm.tags.trim());
  const changed = () => renderUploads();
  try {
    let result;
    try {
      result = await upload("/v1/documents", form, (fraction) => {
        item.progress = fraction;
        changed();
      });
    } finally {
      sent();
    }
    item.documentId = result.document_id;
    if (result.duplicate || !result.job_id) {
      item.status = "duplicate";
    } else {
      item.status = "queued";
      changed();
      item.progress = 0;
      const job = await followJob(result.job_id, (job) => {
        item.status = jobStatus(job);
        item.progress = job.progress;
        item.cause = job.error || "";
        changed();
      });
      item.status = jobStatus(job);
      item.cause = job.error || "";
    }
  } catch (err) {
    item.status = "failed";
    item.error = err;
  }
  changed();
  refreshList();
}

function uploadRow(item) {
  const finished = ["ready", "duplicate"].includes(item.status);
  const name = item.documentId
    ? h("a", { href: `#/documents/${encodeURIComponent(item.documentId)}` }, item.name)
    : item.name;
  return h(
    "li",
    { class: "upload", dataset: { status: item.status, name: item.name } },
    h("span", { class: "name" }, name),
    h("progress", {
      max: "1",
      value: String(finished ? 1 : item.progress),
      "aria-label": `${item.name}: ${Math.round(item.progress * 100)} %`,
    }),
    badge(item.status, t(`status.${item.status}`)),
    item.error || item.cause
      ? h("span", { class: "cause" }, item.error ? describe(item.error) : describeCause(item.cause))
      : null,
  );
}

function renderUploads() {
  const list = document.getElementById("uploads");
  if (!list) return;
  const section = list.closest("section");
  section.hidden = uploads.length === 0;
  replace(list, uploads.map(uploadRow));
}

function dropZone() {
  const input = h("input", {
    type: "file",
    multiple: true,
    id: "file-input",
    class: "visually-hidden",
    onchange: () => {
      startUploads([...input.files]);
      input.value = "";
    },
  });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone" },
    h("span", {}, t("docs.drop"), " "),
    h("label", { for: "file-input", class: "button-like", tabindex: "0" }, t("docs.choose")),
    input,
  );
  const chooser = zone.querySelector("label");
  chooser.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    startUploads([...e.dataTransfer.files]);
  });
  return zone;
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

// -- list -------------------------------------------------------------------------------------

let refreshList = () => {};

export async function renderDocuments(main) {
  const current = nextView();
  const collections = await api("/v1/collections").catch(() => []);
  if (!isCurrent(current)) return;
  const names = collections.map((c) => c.name);
  const datalist = h("datalist", { id: "collection-names" }, names.map((n) => h("option", { value: n })));
  const uploadCollection = h("input", {
    id: "upload-collection",
    list: "collection-names",
    value: uploadForm.collection,
    oninput: (e) => (uploadForm.collection = e.target.value),
  });
  const uploadTags = h("input", {
    id: "upload-tags",
    value: uploadForm.tags,
    oninput: (e) => (uploadForm.tags = e.target.value),
  });
  const option = (value, label, selected) => h("option", { value, selected: value === selected }, label);
  const collectionFilter = h(
    "select",
    { id: "filter-collection" },
    option("", t("docs.all"), filters.collection),
    names.map((n) => option(n, n, filters.collection)),
  );
  const statusFilter = h(
    "select",
    { id: "filter-status" },
    option("", t("docs.all"), filters.status),
    ["queued", "processing", "searchable", "ready", "failed", "deleting"].map((s) =>
      option(s, t(`status.${s}`), filters.status),
    ),
  );
  const tagFilter = h("input", { id: "filter-tag", value: filters.tag });
  const titleFilter = h("input", { id: "filter-title", type: "search", value: filters.title });
  const rows = h("tbody", { id: "documents" });
  const more = h("button", { type: "button", id: "more", hidden: true }, t("docs.more"));
  const empty = h("p", { class: "empty", hidden: true }, t("docs.empty"));
  let cursor = null;
  let timer = null;
  let latest = 0; // only the newest request's answer may fill the list

  // The inputs are the truth: every request (a filter's, a refresh after an upload, the live
  // status poll) reads them when it is made, so no request can carry filters from before a keystroke.
  const readFilters = () => {
    filters.collection = collectionFilter.value;
    filters.status = statusFilter.value;
    filters.tag = tagFilter.value.trim();
    filters.title = titleFilter.value.trim();
  };

  async function load(append) {
    readFilters();
    const request = ++latest;
    const params = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    if (append && cursor) params.set("cursor", cursor);
    let page;
    try {
      page = await api(`/v1/documents?${params}`);
    } catch (err) {
      if (isCurrent(current) && request === latest) {
        empty.hidden = false;
        empty.textContent = t("error.generic", { detail: describe(err) });
      }
      return;
    }
    // A filter changed while this answer was on its way: a newer request fills the list.
    if (!isCurrent(current) || request !== latest) return;
    empty.textContent = t("docs.empty");
    cursor = page.next_cursor;
    const built = page.items.map(documentRow);
    if (append) rows.append(...built);
    else replace(rows, built);
    more.hidden = !cursor;
    empty.hidden = rows.children.length > 0;
    // Live status: while a listed document is being processed, look again shortly.
    clearTimeout(timer);
    if (page.items.some((d) => ["queued", "processing", "deleting"].includes(d.status))) {
      timer = setTimeout(() => isCurrent(current) && load(false), 1500);
    }
  }
  refreshList = () => isCurrent(current) && load(false);

  const onFilter = () => load(false);
  let debounce = null;
  const later = () => {
    clearTimeout(debounce);
    debounce = setTimeout(onFilter, 250);
  };
  collectionFilter.addEventListener("change", onFilter);
  statusFilter.addEventListener("change", onFilter);
  tagFilter.addEventListener("input", later);
  titleFilter.addEventListener("input", later);
  more.addEventListener("click", () => load(true));

  replace(
    main,
    h("h1", {}, t("docs.title")),
    h(
      "section",
      { class: "card", "aria-labelledby": "upload-title" },
      h("h2", { id: "upload-title" }, t("docs.upload")),
      h("div", { class: "row" }, field(t("docs.collection"), uploadCollection), field(t("docs.tags"), uploadTags)),
      datalist,
      dropZone(),
    ),
    h(
      "section",
      { class: "card", hidden: true, "aria-labelledby": "uploads-title" },
      h(
        "div",
        { class: "row between" },
        h("h2", { id: "uploads-title" }, t("docs.uploads")),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              for (let i = uploads.length - 1; i >= 0; i -= 1) {
                if (["ready", "failed", "duplicate"].includes(uploads[i].status)) uploads.splice(i, 1);
              }
              renderUploads();
            },
          },
          t("docs.clear"),
        ),
      ),
      h("ul", { id: "uploads", class: "uploads", "aria-live": "polite" }),
    ),
    contentSearch(() => ({ collection: filters.collection, tag: filters.tag })),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "row filters", role: "search" },
        field(t("docs.search"), titleFilter),
        field(t("docs.collection"), collectionFilter),
        field(t("docs.tag"), tagFilter),
        field(t("docs.status"), statusFilter),
      ),
      h(
        "table",
        { class: "list" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["title", "collection", "status", "version", "tags", "updated"].map((c) =>
              h("th", { scope: "col" }, t(`docs.col.${c}`)),
            ),
          ),
        ),
        rows,
      ),
      empty,
      more,
    ),
  );
  renderUploads();
  await load(false);
}

function save(path, name) {
  download(path, name).catch((err) => toast(t("error.generic", { detail: describe(err) }), "error"));
}

function documentRow(d) {
  return h(
    "tr",
    { dataset: { id: d.id } },
    h("td", {}, h("a", { href: `#/documents/${encodeURIComponent(d.id)}` }, d.title)),
    h("td", {}, d.collection),
    h(
      "td",
      {},
      badge(d.status, t(`status.${d.status}`)),
      d.status === "failed" && d.error ? h("span", { class: "cause" }, describeCause(d.error)) : null,
    ),
    h("td", { class: "num" }, formatNumber(d.current_version)),
    h("td", {}, d.tags.map((tag) => h("span", { class: "tag" }, tag))),
    h("td", {}, formatDate(d.updated_at)),
  );
}

// -- one document -----------------------------------------------------------------------------

/** A page image fetched with the caller's credentials (an <img src> cannot send them). */
async function pageImage(path, alt) {
  const img = h("img", { alt, loading: "lazy" });
  const response = await api(path, { raw: true });
  img.src = URL.createObjectURL(await response.blob());
  img.onload = () => URL.revokeObjectURL(img.src);
  return img;
}

// Thumbnails shown at once; a longer document shows the rest on demand.
const THUMBS = 24;

/** The document's pages (PDFs and images): thumbnails, and the page opened beside them. A
 * citation opens here on its page (``#/documents/{id}/pages/{n}``). */
function pagesCard(path, doc, opened) {
  const card = h("section", { class: "card", id: "pages", hidden: true });
  const viewer = h("figure", { class: "page-view", id: "page-view" });
  const strip = h("ol", { class: "thumbs", id: "thumbs" });
  const current = doc.versions.find((v) => v.number === doc.current_version);
  const scanned = (current?.warnings || []).some((w) => w.includes("OCR"));
  async function open(n) {
    for (const li of strip.children) li.toggleAttribute("aria-current", Number(li.dataset.page) === n);
    const caption = h("figcaption", {}, t("doc.page", { page: n }));
    try {
      replace(viewer, await pageImage(`${path}/pages/${n}?size=page`, t("doc.page", { page: n })), caption);
      viewer.scrollIntoView({ block: "nearest" });
    } catch (err) {
      replace(viewer, h("p", { class: "error" }, t("error.generic", { detail: describe(err) })));
    }
  }
  async function thumbs(from, to, count) {
    for (let n = from; n <= to; n += 1) {
      const li = h("li", { dataset: { page: n } });
      const button = h("button", { type: "button", class: "thumb", onclick: () => open(n) });
      li.append(button);
      strip.append(li);
      pageImage(`${path}/pages/${n}?size=thumb`, t("doc.page", { page: n }))
        .then((img) => button.append(img, h("span", {}, String(n))))
        .catch(() => button.append(h("span", {}, String(n))));
    }
    if (to < count) {
      const more = h("li", {}, h("button", { type: "button", onclick: () => { more.remove(); thumbs(to + 1, count, count); } }, t("doc.morePages", { n: count - to })));
      strip.append(more);
    }
  }
  api(`${path}/pages`)
    .then((info) => {
      if (!info.pages) return;
      card.hidden = false;
      replace(
        card,
        h(
          "div",
          { class: "row between" },
          h("h2", {}, t("doc.pages", { n: info.pages })),
          scanned
            ? h(
                "button",
                { type: "button", id: "download-searchable", onclick: () => save(`${path}/content?rendition=searchable`, `${doc.title}.pdf`) },
                t("doc.downloadSearchable"),
              )
            : null,
        ),
        strip,
        viewer,
      );
      thumbs(1, Math.min(info.pages, Math.max(THUMBS, opened || 0)), info.pages);
      open(Math.min(Math.max(opened || 1, 1), info.pages));
    })
    .catch(() => {}); // no pages to show: the card stays hidden
  return card;
}

export async function renderDocument(main, id, { page } = {}) {
  const current = nextView();
  let doc;
  try {
    doc = await api(`/v1/documents/${encodeURIComponent(id)}`);
  } catch (err) {
    replace(main, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
    return;
  }
  if (!isCurrent(current)) return;
  const path = `/v1/documents/${encodeURIComponent(id)}`;
  const status = h("p", { id: "doc-progress", "aria-live": "polite" });
  const newVersion = h("input", {
    type: "file",
    id: "new-version",
    class: "visually-hidden",
    onchange: async () => {
      const file = newVersion.files[0];
      if (!file) return;
      const form = new FormData();
      form.append("file", file, file.name);
      try {
        const result = await upload(`${path}/versions`, form, (f) => {
          status.textContent = `${file.name}: ${t("status.uploading")} ${Math.round(f * 100)} %`;
        });
        if (result.job_id) {
          const job = await followJob(result.job_id, (job) => {
            status.textContent = `${file.name}: ${t(`status.${jobStatus(job)}`)}`;
          });
          status.textContent = `${file.name}: ${t(`status.${jobStatus(job)}`)} ${describeCause(job.error || "")}`;
        } else {
          status.textContent = `${file.name}: ${t("status.duplicate")}`;
        }
      } catch (err) {
        status.textContent = t("error.generic", { detail: describe(err) });
      }
      if (isCurrent(current)) renderDocument(main, id);
    },
  });
  const dialog = confirmDialog(doc, async () => {
    try {
      await api(path, { method: "DELETE" }); // to the trash, at once (restorable: Records)
      toast(t("doc.deleted", { title: doc.title }));
      location.hash = "#/documents";
    } catch (err) {
      toast(t("error.generic", { detail: describe(err) }), "error");
    }
  });
  const cause = failureCause(doc);
  replace(
    main,
    h("p", {}, h("a", { href: "#/documents" }, `← ${t("doc.back")}`)),
    h(
      "div",
      { class: "row between" },
      h("h1", { id: "doc-title" }, doc.title),
      badge(doc.status, t(`status.${doc.status}`)),
    ),
    doc.status === "failed"
      ? h(
          "p",
          { class: "failure", id: "doc-error", role: "alert" },
          cause ? t("doc.failed", { cause: describeCause(cause) }) : t("doc.failedUnknown"),
        )
      : null,
    h(
      "div",
      { class: "row actions" },
      h(
        "button",
        { type: "button", id: "download", onclick: () => save(`${path}/content`, doc.title) },
        t("doc.download"),
      ),
      h(
        "label",
        {
          for: "new-version",
          class: "button-like",
          tabindex: "0",
          onkeydown: (e) => {
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              newVersion.click();
            }
          },
        },
        t("doc.newVersion"),
      ),
      newVersion,
      h("button", { type: "button", id: "delete", class: "danger", onclick: () => dialog.showModal() }, t("doc.delete")),
    ),
    status,
    dialog,
    metadataCard(doc, path, () => isCurrent(current) && renderDocument(main, id)),
    pagesCard(path, doc, page),
    accessCard(id),
    h(
      "section",
      { class: "card" },
      h("h2", {}, t("doc.versions")),
      h(
        "table",
        { class: "list", id: "versions" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              t("docs.col.version"),
              t("doc.file"),
              t("doc.size"),
              t("doc.type"),
              t("docs.col.status"),
              t("doc.chunks"),
              t("doc.entities"),
              t("doc.created"),
              "",
            ].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        h(
          "tbody",
          {},
          [...doc.versions].reverse().map((v) =>
            h(
              "tr",
              { dataset: { version: v.number } },
              h("td", { class: "num" }, String(v.number)),
              h("td", {}, v.filename),
              h("td", { class: "num" }, formatBytes(v.size_bytes)),
              h("td", {}, v.media_type),
              h(
                "td",
                {},
                badge(v.status, t(`status.${v.status}`)),
                v.status === "failed" && v.error ? h("span", { class: "cause" }, describeCause(v.error)) : null,
              ),
              h("td", { class: "num chunks" }, v.chunk_count == null ? "–" : formatNumber(v.chunk_count)),
              h("td", { class: "num entities" }, v.entity_count == null ? "–" : formatNumber(v.entity_count)),
              h("td", {}, formatDate(v.created_at)),
              h(
                "td",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    onclick: () => save(`${path}/versions/${v.number}/content`, v.filename),
                  },
                  t("doc.download"),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  );
  if (["queued", "processing", "deleting"].includes(doc.status)) {
    setTimeout(() => isCurrent(current) && renderDocument(main, id), 1500);
  }
}

/** Why the document failed: the API's ``error`` on the document, else on its current version. */
function failureCause(doc) {
  const version = doc.versions.find((v) => v.number === doc.current_version);
  return doc.error || version?.error || "";
}

function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The document's fields, and an editor for its title, collection, tags and metadata (PATCH:
 * tags and metadata are replaced whole; the collection is sent only when it changed). A metadata value that was not a string (a number, a list) is
 * sent back as it was unless its text was changed; a changed value is sent as text. */
function metadataCard(doc, path, onSaved) {
  const card = h("section", { class: "card", id: "metadata", "aria-labelledby": "metadata-title" });
  const heading = (...extra) =>
    h("div", { class: "row between" }, h("h2", { id: "metadata-title" }, t("doc.metadata")), ...extra);

  function view() {
    replace(
      card,
      heading(h("button", { type: "button", id: "edit", onclick: edit }, t("doc.edit"))),
      h(
        "dl",
        { class: "meta" },
        h("dt", {}, t("doc.id")),
        h("dd", {}, h("code", {}, doc.id)),
        h("dt", {}, t("docs.col.collection")),
        h("dd", {}, doc.collection),
        h("dt", {}, t("docs.col.tags")),
        h("dd", { id: "doc-tags" }, doc.tags.length ? doc.tags.map((x) => h("span", { class: "tag" }, x)) : t("doc.none")),
        h("dt", {}, t("doc.created")),
        h("dd", {}, formatDate(doc.created_at)),
        h("dt", {}, t("docs.col.updated")),
        h("dd", {}, formatDate(doc.updated_at)),
        Object.entries(doc.metadata).flatMap(([k, v]) => [
          h("dt", { class: "meta-key" }, k),
          h("dd", { class: "meta-value" }, shown(v)),
        ]),
      ),
    );
  }

  function fieldRow(key = "", value, known = false) {
    const name = h("input", { class: "meta-key", value: key, "aria-label": t("doc.fieldName") });
    const text = h("input", { class: "meta-value", value: known ? shown(value) : "", "aria-label": t("doc.fieldValue") });
    const row = h(
      "li",
      { class: "row meta-row" },
      name,
      text,
      h("button", { type: "button", class: "remove-field", onclick: () => row.remove() }, t("doc.removeField")),
    );
    row.read = () => {
      const k = name.value.trim();
      const v = known && text.value === shown(value) ? value : text.value;
      return [k, v];
    };
    return row;
  }

  function edit() {
    const title = h("input", { id: "edit-title", value: doc.title, required: true, maxlength: "300" });
    const tags = h("input", { id: "edit-tags", value: doc.tags.join(", ") });
    // Moving to another collection re-labels the passages; nothing is embedded again.
    const names = h("datalist", { id: "edit-collections" });
    const collection = h("input", { id: "edit-collection", value: doc.collection, list: "edit-collections", required: true });
    api("/v1/collections")
      .then((all) => replace(names, all.map((c) => h("option", { value: c.name }))))
      .catch(() => {}); // suggestions only
    const rows = h(
      "ul",
      { id: "edit-metadata", class: "meta-rows" },
      Object.entries(doc.metadata).map(([k, v]) => fieldRow(k, v, true)),
    );
    const error = h("p", { class: "error", id: "edit-error", role: "alert" });
    const saveButton = h("button", { type: "submit", class: "primary", id: "save" }, t("doc.save"));
    const form = h(
      "form",
      { id: "edit-form", class: "edit" },
      h("label", { class: "field" }, h("span", {}, t("docs.col.title")), title),
      h("label", { class: "field" }, h("span", {}, t("docs.collection")), collection, names),
      h("label", { class: "field" }, h("span", {}, t("docs.tags")), tags),
      h(
        "fieldset",
        {},
        h("legend", {}, t("doc.metadata")),
        rows,
        h(
          "button",
          {
            type: "button",
            id: "add-field",
            onclick: () => {
              const row = fieldRow();
              rows.append(row);
              row.querySelector("input").focus();
            },
          },
          t("doc.addField"),
        ),
      ),
      error,
      h(
        "div",
        { class: "row actions" },
        saveButton,
        h("button", { type: "button", id: "cancel-edit", onclick: view }, t("doc.cancel")),
      ),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const metadata = {};
      for (const row of rows.children) {
        const [k, v] = row.read();
        if (!k && v === "") continue; // an empty row left over
        if (!k) {
          error.textContent = t("doc.noKey");
          return;
        }
        metadata[k] = v;
      }
      const body = {
        title: title.value.trim(),
        tags: tags.value.split(",").map((x) => x.trim()).filter(Boolean),
        metadata,
      };
      if (collection.value.trim() !== doc.collection) body.collection = collection.value.trim();
      saveButton.disabled = true;
      try {
        await api(path, { method: "PATCH", json: body });
        toast(t("doc.saved"));
        onSaved();
      } catch (err) {
        error.textContent = describe(err);
        saveButton.disabled = false;
      }
    });
    replace(card, heading(), form);
    title.focus();
  }

  view();
  return card;
}

function confirmDialog(doc, onConfirm) {
  const dialog = h(
    "dialog",
    { id: "confirm-delete", "aria-labelledby": "confirm-text" },
    h("p", { id: "confirm-text" }, t("doc.confirmDelete", { title: doc.title })),
    h(
      "form",
      { method: "dialog", class: "row actions" },
      h("button", { value: "cancel", autofocus: true }, t("doc.cancel")),
      h("button", { value: "delete", class: "danger", id: "confirm-delete-button" }, t("doc.delete")),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "delete") onConfirm();
  });
  return dialog;
}
