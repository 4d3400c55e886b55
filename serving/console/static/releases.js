// Releases: the production release and the candidates, their latest evaluation scores, the
// evaluation report (with its plots) and the promotion gate's verdict; how to run a first
// evaluation, and a form that starts one (POST /v1/eval/runs) and follows it.
import { api } from "./api.js";
import { h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe, describeCause } from "./errors.js";
import { formatDate, formatNumber, t } from "./i18n.js";

const POLL_MS = 1500;
// The run started from this tab, followed again when the page is shown again.
const running = { id: null };

export async function renderReleases(main) {
  const current = nextView();
  replace(main, h("h1", {}, t("rel.title")), h("p", { class: "hint" }, "…"));
  let data;
  let suites;
  try {
    // No suites route (an older server): the page explains the command line only.
    [data, suites] = await Promise.all([api("/v1/releases"), api("/v1/eval/suites").catch(() => null)]);
  } catch (err) {
    if (!isCurrent(current)) return;
    const message = err.status === 404 ? t("rel.unavailable") : t("error.generic", { detail: describe(err) });
    replace(main, h("h1", {}, t("rel.title")), h("p", { class: "empty", id: "releases-state" }, message));
    return;
  }
  if (!isCurrent(current)) return;
  const releases = data.releases || [];
  const reload = () => isCurrent(current) && renderReleases(main);
  if (!releases.length) {
    replace(
      main,
      h("h1", {}, t("rel.title")),
      h("p", { class: "empty", id: "releases-state" }, t("rel.none")),
      runCard(releases, suites, current, reload),
    );
    return;
  }
  const production = releases.filter((r) => r.production || r.id === data.production);
  const candidates = releases.filter((r) => !production.includes(r));
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
    runCard(releases, suites, current, reload),
  );
}

/** How to run an evaluation and, where the server lists its suites, a form that starts one.
 * With no release evaluated yet it is the page's main content: it explains what an
 * evaluation is. */
function runCard(releases, suites, current, reload) {
  const first = releases.length === 0;
  const available = (suites || []).filter((s) => s.available);
  const example = available[0]?.name || suites?.[0]?.name || "fr_service_public_qa";
  const state = h("div", { id: "run-state", "aria-live": "polite" });
  const card = h(
    "section",
    { class: "card", id: "run-evaluation", "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, first ? t("rel.firstTitle") : t("rel.runTitle")),
    first ? h("p", { class: "why" }, t("rel.firstWhy")) : null,
    h("p", {}, t("rel.firstCli")),
    h("pre", { class: "command" }, h("code", {}, `gedrag eval run --release default --suite ${example}`)),
  );
  if (suites === null) return card;
  if (!available.length) {
    card.append(h("p", { class: "hint", id: "no-suites" }, t("rel.noSuites")));
    return card;
  }
  const releaseSelect = h(
    "select",
    { id: "run-release" },
    releases.some((r) => r.name === "default") ? null : h("option", { value: "default" }, "default"),
    releases.map((r) => h("option", { value: r.id }, `${r.name} (${r.id.slice(0, 12)})`)),
  );
  const suiteSelect = h(
    "select",
    { id: "run-suite" },
    suites.map((s) =>
      h(
        "option",
        { value: s.name, disabled: !s.available, selected: s.name === example, title: s.description },
        s.available ? s.name : `${s.name} ${t("rel.noData")}`,
      ),
    ),
  );
  const start = h("button", { type: "submit", class: "primary", id: "run-start" }, t("rel.run"));
  const form = h(
    "form",
    { class: "row actions", id: "run-form" },
    h("label", { class: "field" }, h("span", {}, t("rel.release")), releaseSelect),
    h("label", { class: "field" }, h("span", {}, t("rel.suite")), suiteSelect),
    start,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    start.disabled = true;
    try {
      const run = await api("/v1/eval/runs", {
        method: "POST",
        json: { release: releaseSelect.value, suite: suiteSelect.value },
      });
      running.id = run.id;
      follow(state, start, current, reload);
    } catch (err) {
      const message = err.status === 403 ? t("rel.forbidden", { detail: describeCause(err.detail) }) : t("error.generic", { detail: describe(err) });
      replace(state, h("p", { class: "error", role: "alert" }, message));
      start.disabled = false;
    }
  });
  card.append(first ? h("p", {}, t("rel.firstHere")) : null, form, state);
  if (running.id) {
    start.disabled = true;
    follow(state, start, current, reload);
  }
  return card;
}

function stageName(stage) {
  const key = { "parse + chunk": "parse", "embed chunks": "embed", index: "index", "answer + score": "answer" }[stage];
  return key ? t(`rel.stage.${key}`) : stage;
}

/** Poll the run started here until it ends; the page shows the new scores when it succeeds. */
async function follow(box, start, current, reload) {
  const id = running.id;
  for (;;) {
    let run;
    try {
      run = await api(`/v1/eval/runs/${encodeURIComponent(id)}`);
    } catch (err) {
      if (isCurrent(current)) replace(box, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
      running.id = null;
      return;
    }
    if (!isCurrent(current) || running.id !== id) return; // the page was left; it follows again when shown
    if (run.state === "running") {
      const p = run.progress || {};
      replace(
        box,
        h(
          "p",
          { class: "running", dataset: { run: id } },
          t("rel.running"),
          p.stage
            ? [" ", t("rel.progress", { stage: stageName(p.stage), done: formatNumber(p.done), total: formatNumber(p.total) })]
            : null,
        ),
        p.total ? h("progress", { max: String(p.total), value: String(p.done) }) : h("progress", {}),
      );
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      continue;
    }
    running.id = null;
    start.disabled = false;
    if (run.state === "succeeded") {
      toast(t("rel.runDone"));
      reload();
    } else {
      const cause = describeCause(run.info?.error || run.state);
      replace(box, h("p", { class: "error", role: "alert", dataset: { run: id } }, t("rel.runFailed", { detail: cause })));
    }
    return;
  }
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
                  h("td", { class: "num", dataset: { metric: m } }, m in run.scores ? formatNumber(run.scores[m], 3) : "–"),
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
        const message = err.status === 403 ? t("rel.forbidden", { detail: describeCause(err.detail) }) : t("error.generic", { detail: describe(err) });
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
      replace(box, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
    }
  });
  return button;
}
