// Releases: the production release and the candidates, their latest evaluation scores, the
// evaluation report (with its plots) and the promotion gate's verdict.
import { api } from "./api.js";
import { h, isCurrent, nextView, replace } from "./dom.js";
import { formatDate, t } from "./i18n.js";

export async function renderReleases(main) {
  const current = nextView();
  replace(main, h("h1", {}, t("rel.title")), h("p", { class: "hint" }, "…"));
  let data;
  try {
    data = await api("/v1/releases");
  } catch (err) {
    if (!isCurrent(current)) return;
    const message = err.status === 404 ? t("rel.unavailable") : t("error.generic", { detail: err.detail });
    replace(main, h("h1", {}, t("rel.title")), h("p", { class: "empty", id: "releases-state" }, message));
    return;
  }
  if (!isCurrent(current)) return;
  const releases = data.releases || [];
  if (!releases.length) {
    replace(main, h("h1", {}, t("rel.title")), h("p", { class: "empty", id: "releases-state" }, t("rel.none")));
    return;
  }
  const production = releases.filter((r) => r.production || r.id === data.production);
  const candidates = releases.filter((r) => !production.includes(r));
  const reload = () => isCurrent(current) && renderReleases(main);
  replace(
    main,
    h("h1", {}, t("rel.title")),
    h(
      "section",
      { id: "production", "aria-labelledby": "production-title" },
      h("h2", { id: "production-title" }, t("rel.production")),
      production.length ? production.map((r) => releaseCard(r, false, reload)) : h("p", { class: "empty" }, t("rel.noProduction")),
    ),
    h(
      "section",
      { id: "candidates", "aria-labelledby": "candidates-title" },
      h("h2", { id: "candidates-title" }, t("rel.candidates")),
      candidates.map((r) => releaseCard(r, true, reload)),
    ),
  );
}

function metricNames(runs) {
  const names = new Set();
  for (const run of runs) for (const name of Object.keys(run.scores || {})) names.add(name);
  return [...names].sort();
}

function releaseCard(release, promotable, reload) {
  const runs = release.latest_runs || [];
  const metrics = metricNames(runs);
  const report = h("div", { class: "report" });
  const verdict = h("div", { class: "verdict", "aria-live": "polite" });
  const card = h(
    "article",
    { class: "card release", dataset: { id: release.id } },
    h(
      "div",
      { class: "row between" },
      h("h3", {}, release.name || release.id),
      release.production ? h("span", { class: "badge s-ready" }, t("rel.production")) : null,
    ),
    h("p", { class: "hint" }, h("code", {}, release.id), ` · ${t("rel.created")} ${formatDate(release.created_at)}`),
    h("h4", {}, t("rel.runs")),
    runs.length
      ? h(
          "table",
          { class: "list scores" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, t("rel.suite")),
              metrics.map((m) => h("th", { scope: "col" }, m)),
              h("th", { scope: "col" }, t("rel.finished")),
              h("th", {}, ""),
            ),
          ),
          h(
            "tbody",
            {},
            runs.map((run) =>
              h(
                "tr",
                { dataset: { run: run.id } },
                h("td", {}, run.suite),
                metrics.map((m) =>
                  h("td", { class: "num", dataset: { metric: m } }, m in run.scores ? run.scores[m].toFixed(3) : "–"),
                ),
                h("td", {}, formatDate(run.finished_at)),
                h("td", {}, reportButton(run, report)),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, t("rel.noRuns")),
    report,
  );
  if (promotable) {
    const suites = [...new Set(runs.map((r) => r.suite))];
    const suite = h(
      "select",
      { class: "suite" },
      h("option", { value: "" }, t("rel.anySuite")),
      suites.map((s) => h("option", { value: s }, s)),
    );
    const button = h("button", { type: "button", class: "primary promote" }, t("rel.promote"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = await api(`/v1/releases/${encodeURIComponent(release.id)}/promote`, {
          method: "POST",
          json: suite.value ? { suite: suite.value } : {},
        });
        showVerdict(verdict, result);
        if (result.promoted) setTimeout(reload, 2500);
      } catch (err) {
        const message = err.status === 403 ? t("rel.forbidden", { detail: err.detail }) : t("error.generic", { detail: err.detail });
        replace(verdict, h("p", { class: "error", role: "alert" }, message));
      }
      button.disabled = false;
    });
    card.append(
      h("div", { class: "row actions" }, h("label", { class: "field" }, h("span", {}, t("rel.promoteSuite")), suite), button),
      verdict,
    );
  }
  return card;
}

function showVerdict(box, result) {
  replace(
    box,
    h(
      "p",
      { class: result.promoted ? "ok" : "refused", dataset: { promoted: String(result.promoted) } },
      result.promoted ? t("rel.promoted") : t("rel.refused"),
    ),
    result.reasons && result.reasons.length
      ? [h("h4", {}, t("rel.reasons")), h("ul", { class: "reasons" }, result.reasons.map((r) => h("li", {}, r)))]
      : null,
  );
}

/** The self-contained HTML report (plots inline), fetched with the key and shown sandboxed:
 * no scripts, no access to the console's storage. */
function reportButton(run, box) {
  const button = h("button", { type: "button", class: "report-button" }, t("rel.report"));
  button.addEventListener("click", async () => {
    if (box.dataset.run === run.id) {
      box.dataset.run = "";
      replace(box);
      button.textContent = t("rel.report");
      return;
    }
    try {
      const response = await api(run.report_url, { raw: true });
      const frame = h("iframe", { sandbox: "", title: `${run.suite} — ${run.id}`, class: "report-frame" });
      frame.srcdoc = await response.text();
      box.dataset.run = run.id;
      replace(box, frame);
      button.textContent = t("rel.hideReport");
    } catch (err) {
      replace(box, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: err.detail })));
    }
  });
  return button;
}
