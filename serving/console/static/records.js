// Records: the trash (restore, purge now), legal holds (place, release), retention policies
// (add, confirm) with the dry run of what goes next, deletion certificates, and subject-access
// requests (find, export, erase). Administrator actions show only for administrator keys; the
// server checks them anyway (403).
import { api } from "./api.js";
import { h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe } from "./errors.js";
import { formatDate, formatNumber, t } from "./i18n.js";

function failed(err) {
  toast(t("error.generic", { detail: describe(err) }), "error");
}

/** Run ``fn``; on success re-render the page, on failure say why. */
function action(fn, reload) {
  return async () => {
    try {
      await fn();
      reload();
    } catch (err) {
      failed(err);
    }
  };
}

function table(headers, rows, id) {
  return h(
    "table",
    { class: "list", id },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows),
  );
}

function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

function selects(selector) {
  const parts = [];
  if (selector.document_ids?.length) parts.push(t("rec.sel.docs", { n: formatNumber(selector.document_ids.length) }));
  if (selector.collection) parts.push(`${t("docs.collection")}: ${selector.collection}`);
  if (selector.tags?.length) parts.push(`${t("docs.tag")}: ${selector.tags.join(", ")}`);
  if (selector.type) parts.push(`${t("rec.type")}: ${selector.type}`);
  for (const [k, v] of Object.entries(selector.metadata || {})) parts.push(`${k} = ${v}`);
  if (selector.title_contains) parts.push(`${t("rec.title")} ∋ ${selector.title_contains}`);
  return parts.join(" · ");
}

/** A selector from one "kind" menu and its value (the console keeps it to one criterion). */
function selectorInput(prefix) {
  const kind = h(
    "select",
    { id: `${prefix}-kind` },
    ["type", "collection", "tag", "correspondent", "document"].map((k) => h("option", { value: k }, t(`rec.by.${k}`))),
  );
  const value = h("input", { id: `${prefix}-value`, required: true });
  const read = () => {
    const v = value.value.trim();
    return {
      type: { type: v },
      collection: { collection: v },
      tag: { tags: [v] },
      correspondent: { metadata: { correspondent: v } },
      document: { document_ids: v.split(/[\s,]+/).filter(Boolean) },
    }[kind.value];
  };
  return { nodes: [field(t("rec.selects"), kind), field(t("rec.value"), value)], read };
}

export async function renderRecords(main) {
  const current = nextView();
  replace(main, h("h1", {}, t("rec.heading")), h("p", { class: "hint" }, "…"));
  let me;
  let trash;
  let holds;
  let policies;
  let preview;
  let certificates;
  try {
    [me, trash, holds, policies, preview, certificates] = await Promise.all([
      api("/v1/records/me"),
      api("/v1/trash"),
      api("/v1/holds?active=true"),
      api("/v1/retention/policies"),
      api("/v1/retention/preview?within_days=30"),
      api("/v1/certificates?limit=20"),
    ]);
  } catch (err) {
    if (!isCurrent(current)) return;
    replace(main, h("h1", {}, t("rec.heading")), h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
    return;
  }
  if (!isCurrent(current)) return;
  const reload = () => isCurrent(current) && renderRecords(main);
  replace(
    main,
    h("h1", {}, t("rec.heading")),
    me.admin ? null : h("p", { class: "hint", id: "not-admin" }, t("rec.notAdmin")),
    trashCard(trash.items, me.admin, reload),
    holdsCard(holds, me.admin, reload),
    retentionCard(policies, preview, me.admin, reload),
    certificatesCard(certificates),
    subjectCard(me.admin),
  );
}

function trashCard(items, admin, reload) {
  const rows = items.map((e) =>
    h(
      "tr",
      { dataset: { document: e.document_id } },
      h("td", {}, e.title),
      h("td", {}, e.collection),
      h("td", {}, formatDate(e.trashed_at)),
      h("td", {}, formatDate(e.purge_after)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "restore", onclick: action(() => api(`/v1/documents/${encodeURIComponent(e.document_id)}/restore`, { method: "POST" }), reload) }, t("rec.restore")),
        admin
          ? h(
              "button",
              {
                type: "button",
                class: "danger purge",
                onclick: () => {
                  if (!window.confirm(t("rec.confirmPurge", { title: e.title }))) return;
                  action(async () => {
                    const job = await api(`/v1/trash/${encodeURIComponent(e.document_id)}`, { method: "DELETE" });
                    toast(t("rec.purging", { id: job.certificate_id }));
                  }, reload)();
                },
              },
              t("rec.purge"),
            )
          : null,
      ),
    ),
  );
  return h(
    "section",
    { class: "card", id: "trash", "aria-labelledby": "trash-title" },
    h("h2", { id: "trash-title" }, t("rec.trash")),
    items.length
      ? table([t("rec.title"), t("docs.collection"), t("rec.trashedAt"), t("rec.purgeAfter"), ""], rows, "trash-list")
      : h("p", { class: "empty" }, t("rec.trashEmpty")),
  );
}

function holdsCard(holds, admin, reload) {
  const rows = holds.map((hold) =>
    h(
      "tr",
      { dataset: { hold: hold.id } },
      h("td", {}, hold.name),
      h("td", {}, hold.reason),
      h("td", {}, selects(hold.selector)),
      h("td", {}, hold.placed_by),
      h("td", {}, formatDate(hold.created_at)),
      h(
        "td",
        {},
        admin
          ? h("button", { type: "button", class: "release", onclick: action(() => api(`/v1/holds/${encodeURIComponent(hold.id)}/release`, { method: "POST" }), reload) }, t("rec.release"))
          : null,
      ),
    ),
  );
  const name = h("input", { id: "hold-name", required: true, maxlength: "100" });
  const reason = h("input", { id: "hold-reason", maxlength: "2000" });
  const sel = selectorInput("hold");
  const form = h(
    "form",
    { class: "row actions", id: "hold-form" },
    field(t("rec.name"), name),
    field(t("rec.reason"), reason),
    sel.nodes,
    h("button", { type: "submit", class: "primary" }, t("rec.place")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    action(async () => {
      const hold = await api("/v1/holds", { method: "POST", json: { name: name.value, reason: reason.value, ...sel.read() } });
      toast(t("rec.placed", { name: hold.name, n: formatNumber(hold.documents ?? 0) }));
    }, reload)();
  });
  return h(
    "section",
    { class: "card", id: "holds", "aria-labelledby": "holds-title" },
    h("h2", { id: "holds-title" }, t("rec.holds")),
    h("p", { class: "hint" }, t("rec.holdsWhy")),
    holds.length
      ? table([t("rec.name"), t("rec.reason"), t("rec.selects"), t("rec.by"), t("rec.since"), ""], rows, "hold-list")
      : h("p", { class: "empty" }, t("rec.noHolds")),
    form,
  );
}

function retentionCard(policies, preview, admin, reload) {
  const rows = policies.map((p) =>
    h(
      "tr",
      { dataset: { policy: p.id } },
      h("td", {}, p.name),
      h("td", {}, selects(p.selector)),
      h("td", {}, p.period),
      h("td", {}, t(`rec.anchor.${p.anchor}`)),
      h("td", {}, t(`rec.action.${p.action}`)),
      h(
        "td",
        {},
        p.confirmed
          ? t("rec.active")
          : [
              h("span", { class: "badge s-failed" }, t("rec.pending")),
              admin ? h("button", { type: "button", class: "confirm", onclick: action(() => api(`/v1/retention/policies/${encodeURIComponent(p.id)}/confirm`, { method: "POST" }), reload) }, t("rec.confirm")) : null,
            ],
      ),
    ),
  );
  const name = h("input", { id: "policy-name", required: true, maxlength: "100" });
  const years = h("input", { id: "policy-years", type: "number", min: "0", value: "10" });
  const anchor = h("select", { id: "policy-anchor" }, ["document_date", "upload"].map((a) => h("option", { value: a }, t(`rec.anchor.${a}`))));
  const then = h("select", { id: "policy-action" }, ["purge", "trash"].map((a) => h("option", { value: a }, t(`rec.action.${a}`))));
  const sel = selectorInput("policy");
  const form = h(
    "form",
    { class: "row actions", id: "policy-form" },
    field(t("rec.name"), name),
    sel.nodes,
    field(t("rec.years"), years),
    field(t("rec.from"), anchor),
    field(t("rec.then"), then),
    h("button", { type: "submit", class: "primary", disabled: !admin }, t("rec.add")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    action(async () => {
      const change = await api("/v1/retention/policies", {
        method: "POST",
        json: { name: name.value, selector: sel.read(), years: Number(years.value), anchor: anchor.value, action: then.value },
      });
      toast(change.pending_confirmation ? t("rec.waits", { n: formatNumber(change.would_dispose.length) }) : t("rec.saved"));
    }, reload)();
  });
  const due = (list, id, what) =>
    h(
      "p",
      { id },
      `${what}: ${formatNumber(list.length)}`,
      list.length ? h("span", { class: "hint" }, ` — ${list.slice(0, 5).map((d) => d.title).join(", ")}${list.length > 5 ? "…" : ""}`) : null,
    );
  return h(
    "section",
    { class: "card", id: "retention", "aria-labelledby": "retention-title" },
    h("h2", { id: "retention-title" }, t("rec.retention")),
    policies.length
      ? table([t("rec.name"), t("rec.selects"), t("rec.keep"), t("rec.from"), t("rec.then"), ""], rows, "policy-list")
      : h("p", { class: "empty" }, t("rec.noPolicies")),
    h("h3", {}, t("rec.preview")),
    due(preview.due, "preview-due", t("rec.dueSoon")),
    due(preview.held, "preview-held", t("rec.dueHeld")),
    due(preview.pending, "preview-pending", t("rec.duePending")),
    admin ? form : null,
  );
}

function certificatesCard(certificates) {
  const rows = certificates.map((c) =>
    h(
      "tr",
      { dataset: { certificate: c.id } },
      h("td", {}, h("code", {}, c.document_id.slice(0, 8))),
      h("td", {}, c.kind),
      h("td", {}, c.reason),
      h("td", {}, c.complete ? formatDate(c.completed_at) : t("rec.running")),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            class: "download",
            onclick: () => {
              const blob = new Blob([JSON.stringify(c, null, 2)], { type: "application/json" });
              const a = h("a", { href: URL.createObjectURL(blob), download: `certificate-${c.id}.json` });
              document.body.append(a);
              a.click();
              a.remove();
            },
          },
          t("rec.download"),
        ),
      ),
    ),
  );
  return h(
    "section",
    { class: "card", id: "certificates", "aria-labelledby": "certificates-title" },
    h("h2", { id: "certificates-title" }, t("rec.certificates")),
    certificates.length
      ? table([t("rec.document"), t("rec.kind"), t("rec.reason"), t("rec.completed"), ""], rows, "certificate-list")
      : h("p", { class: "empty" }, t("rec.noCertificates")),
  );
}

function subjectCard(admin) {
  const terms = h("input", { id: "subject-terms", required: true, placeholder: t("rec.termsHint") });
  const out = h("div", { id: "subject-result", "aria-live": "polite" });
  const read = () => terms.value.split(";").map((x) => x.trim()).filter(Boolean);
  const form = h(
    "form",
    { class: "row actions", id: "subject-form" },
    field(t("rec.terms"), terms),
    h("button", { type: "submit", class: "primary" }, t("rec.find")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const report = await api("/v1/subjects/search", { method: "POST", json: { terms: read() } });
      const rows = report.documents.map((d) =>
        h(
          "tr",
          { dataset: { document: d.document_id } },
          h("td", {}, h("a", { href: `#/documents/${encodeURIComponent(d.document_id)}` }, d.title)),
          h("td", {}, d.collection),
          h("td", {}, formatNumber(d.chunks.length)),
          h("td", {}, d.matched_by.join(", ")),
        ),
      );
      const exportButton = h(
        "button",
        {
          type: "button",
          id: "subject-export",
          onclick: async () => {
            try {
              const response = await api("/v1/subjects/export", { method: "POST", json: { terms: read() }, raw: true });
              const a = h("a", { href: URL.createObjectURL(await response.blob()), download: `subject-${report.request_id}.zip` });
              document.body.append(a);
              a.click();
              a.remove();
            } catch (err) {
              failed(err);
            }
          },
        },
        t("rec.export"),
      );
      const eraseButton = admin
        ? h(
            "button",
            {
              type: "button",
              class: "danger",
              id: "subject-erase",
              onclick: async () => {
                if (!window.confirm(t("rec.confirmErase", { n: formatNumber(report.documents.length) }))) return;
                try {
                  const done = await api("/v1/subjects/erase", { method: "POST", json: { terms: read(), confirm: true } });
                  toast(t("rec.erased", { n: formatNumber(done.purged.length), refused: formatNumber(done.refused.length) }));
                } catch (err) {
                  failed(err);
                }
              },
            },
            t("rec.erase"),
          )
        : null;
      replace(
        out,
        h("p", {}, t("rec.found", { n: formatNumber(report.documents.length), chunks: formatNumber(report.chunk_count) })),
        rows.length ? table([t("rec.title"), t("docs.collection"), t("rec.passages"), t("rec.signals")], rows, "subject-list") : null,
        rows.length ? h("div", { class: "row actions" }, exportButton, eraseButton) : null,
      );
    } catch (err) {
      replace(out, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
    }
  });
  return h(
    "section",
    { class: "card", id: "subject", "aria-labelledby": "subject-title" },
    h("h2", { id: "subject-title" }, t("rec.subject")),
    h("p", { class: "hint" }, t("rec.subjectWhy")),
    form,
    out,
  );
}
