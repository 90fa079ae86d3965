// The commissioner dashboard: fetches /analytics.json for the chosen filters and draws it.
// No inline script (the page's Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";

  // Every series is drawn in the style of its outcome word (series.js: one meaning per
  // pattern, colour-blind safe, apart in greyscale); the words come with the figures.
  var OUTCOMES = ["meets-criteria", "does-not-meet-criteria", "insufficient-information"];
  var Series = window.IportSeries;
  var names = { outcomes: {}, outcomeSeries: {} };
  function outcomeLabel(o) { return names.outcomes[o] || o; }
  var charts = {};
  var body = document.body;
  var form = document.getElementById("filters");
  var statusLine = document.getElementById("status");

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }
  // A suppressed figure arrives as text ("<8" for a count, "*" for a share or a statistic,
  // see the disclosure note on the page) and is shown as it is; charts leave it out.
  function num(x) {
    if (typeof x === "string") return x;
    return x === null || x === undefined ? "–" : Number(x).toLocaleString("en-GB");
  }
  function pct(x) {
    if (typeof x === "string") return x;
    return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%";
  }
  function plotted(x) {
    return typeof x === "number" ? x : null;
  }
  function ms(x) {
    if (typeof x === "string") return x;
    return x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-GB");
  }

  // Long category labels are drawn as at most two lines cut with "…" (series.js), so they
  // never overlap; the full name is in the table beside the chart and in the bar's tooltip.
  var LABEL_WIDTH = 32;

  function draw(id, config) {
    config.options = Object.assign(
      { responsive: true, maintainAspectRatio: false, animation: false },
      config.options || {}
    );
    if (charts[id]) {
      charts[id].destroy();
    }
    charts[id] = new window.Chart(document.getElementById(id), config);
  }

  function outcomeDatasets(rows, keys) {
    return keys.map(function (o) {
      return Series.dataset(names.outcomeSeries[o], outcomeLabel(o), rows.map(function (r) { return plotted(r[o]); }));
    });
  }

  // A horizontal chart is as tall as its bars need (two label lines each), so labels never
  // overlap however many groups there are.
  function fitHeight(id, bars) {
    var box = document.getElementById(id).parentNode;
    box.style.height = Math.max(10, 3 * bars + 4) + "rem";
  }

  function stackedBars(id, labels, rows, keys, horizontal) {
    var value = { stacked: true, beginAtZero: true, ticks: { precision: 0 } };
    var category = {
      stacked: true,
      ticks: horizontal ? Series.categoryTicks(LABEL_WIDTH) : { autoSkip: true, maxRotation: 0 },
    };
    if (horizontal) fitHeight(id, labels.length);
    draw(id, {
      type: "bar",
      data: { labels: labels, datasets: outcomeDatasets(rows, keys) },
      options: {
        indexAxis: horizontal ? "y" : "x",
        scales: horizontal ? { x: value, y: category } : { x: category, y: value },
      },
    });
  }

  function fillTable(id, rows, columns) {
    var tbody = document.querySelector("#" + id + " tbody");
    tbody.replaceChildren();
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (cell, i) {
        var td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.textContent = cell;
        if (i >= (columns || 1)) td.className = "n";
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = document.querySelectorAll("#" + id + " thead th").length;
      td.textContent = "None in this period.";
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  function outcomeCells(r) {
    return [num(r["meets-criteria"]), num(r["does-not-meet-criteria"]), num(r["insufficient-information"]), num(r.total)];
  }

  function render(data) {
    names = data.names;
    var t = data.totals;
    var multiPolicy = data.people.byPolicy.length > 1;
    text("t-people", num(data.people.assessed));
    text("t-evaluations", num(t.evaluations));
    var perPerson = typeof t.evaluations === "number" && typeof data.people.assessed === "number" && data.people.assessed;
    text("t-evaluations-sub", perPerson ? (t.evaluations / data.people.assessed).toFixed(1) + " per person" : "");
    text("t-cards", num(t.cards));
    text("t-feedback", num(t.feedback));
    text("t-feedback-rate", t.feedbackRate === null ? "" : pct(t.feedbackRate) + " of cards");
    text("disclosure-note", data.disclosure.note);
    text("t-override", pct(t.overrideRate));
    text("t-override-offered", pct(data.feedbackByOffer.withSuggestions.overrideRate));

    // People by policy and pathway.
    var pathways = [];
    data.people.byPolicy.forEach(function (p) {
      p.pathways.forEach(function (pw) {
        pathways.push(Object.assign({ policyName: p.name }, pw));
      });
    });
    stackedBars(
      "c-people",
      pathways.map(function (r) { return (multiPolicy ? r.policyName + ": " : "") + r.name; }),
      pathways,
      OUTCOMES,
      true
    );
    fillTable("tbl-people", pathways.map(function (r) { return [r.policyName, r.name].concat(outcomeCells(r)); }), 2);

    // People by place.
    var byPlace = data.people.byPlace;
    stackedBars(
      "c-places",
      byPlace.map(function (r) { return (multiPolicy ? r.policyName + ": " : "") + r.name; }),
      byPlace,
      OUTCOMES,
      true
    );
    fillTable("tbl-places", byPlace.map(function (r) { return [r.policyName, r.name].concat(outcomeCells(r)); }), 2);

    // Evaluations over time, binned by day, week or month.
    var trend = data.trend;
    text("trend-bin", { day: "per day", week: "per week", month: "per month" }[trend.bin]);
    var keys = OUTCOMES.concat(["no-decision"]);
    stackedBars("c-trend", trend.rows.map(function (r) { return r.label; }), trend.rows, keys, false);
    fillTable(
      "tbl-trend",
      trend.rows.map(function (r) {
        return [r.label, num(r["meets-criteria"]), num(r["does-not-meet-criteria"]), num(r["insufficient-information"]), num(r["no-decision"]), num(r.cards)];
      })
    );

    // The call counts behind the people: every outcome, every policy, every place.
    fillTable(
      "tbl-calls",
      Object.keys(data.evaluationsByOutcome).map(function (k) {
        return [outcomeLabel(k), num(data.evaluationsByOutcome[k]), num(data.cardsByOutcome[k] || 0)];
      })
    );
    fillTable(
      "tbl-by-policy",
      data.policies.map(function (x) {
        var totals = data.byPolicy[x.key] || {};
        return [data.names.policies[x.id] || x.title, num(totals.evaluations), num(totals.cards), num(totals.feedback), pct(totals.overrideRate)];
      })
    );
    fillTable("tbl-calls-place", data.evaluationsByPlace.map(function (r) { return [r.name].concat(outcomeCells(r)); }));

    // Feedback, split by whether the card offered anything to accept.
    var offer = data.feedbackByOffer;
    fillTable("tbl-offer", [
      ["Offered a suggestion", num(offer.withSuggestions.accepted), num(offer.withSuggestions.overridden), pct(offer.withSuggestions.overrideRate)],
      ["Offered nothing to accept", num(offer.withoutSuggestions.accepted), num(offer.withoutSuggestions.overridden), pct(offer.withoutSuggestions.overrideRate)],
      ["All cards", num(t.accepted), num(t.overridden), pct(t.overrideRate)],
    ]);
    var byOutcome = data.feedbackByCardOutcome;
    fillTable(
      "tbl-by-outcome",
      Object.keys(byOutcome).map(function (k) {
        var v = byOutcome[k];
        return [outcomeLabel(k), num(v.accepted), num(v.overridden), pct(v.overrideRate)];
      })
    );

    var reasons = data.overrideReasons;
    fitHeight("c-reasons", reasons.length);
    draw("c-reasons", {
      type: "bar",
      data: {
        labels: reasons.map(function (r) { return r.display; }),
        datasets: [Series.dataset("count", "Overrides", reasons.map(function (r) { return plotted(r.count); }))],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: Series.categoryTicks(LABEL_WIDTH) } },
      },
    });
    fillTable("tbl-reasons", reasons.map(function (r) { return [r.display, num(r.count)]; }));

    // Blocking criteria: a share of the evaluations that needed them, per policy.
    var blocking = [];
    data.blockingByPolicy.forEach(function (p) {
      p.criteria.forEach(function (c) {
        blocking.push(Object.assign({ policyName: p.name }, c));
      });
    });
    var top = blocking.slice().sort(function (a, b) { return (plotted(b.share) || 0) - (plotted(a.share) || 0); }).slice(0, 10);
    function percent(x) { return typeof x === "number" ? 100 * x : null; }
    fitHeight("c-blocking", top.length);
    draw("c-blocking", {
      type: "bar",
      data: {
        labels: top.map(function (b) { return (multiPolicy ? b.policyName + ": " : "") + b.title; }),
        datasets: [
          Series.dataset("does not meet", "Not met (% of evaluations needing it)", top.map(function (b) { return percent(b.notMetShare); })),
          Series.dataset("data missing", "Unknown (% of evaluations needing it)", top.map(function (b) { return percent(b.unknownShare); })),
        ],
      },
      options: {
        indexAxis: "y",
        scales: {
          x: { stacked: true, beginAtZero: true, max: 100, ticks: { callback: function (v) { return v + "%"; } } },
          y: { stacked: true, ticks: Series.categoryTicks(LABEL_WIDTH) },
        },
      },
    });
    fillTable(
      "tbl-blocking",
      blocking.map(function (b) { return [b.policyName, b.title, num(b.evaluations), num(b.notMet), num(b.unknown), pct(b.share)]; }),
      2
    );

    // Operations (collapsed section).
    text("t-prefetch", pct(data.prefetch.hitRate));
    text("t-prefetch-sub", pct(data.prefetch.fullyPrefetchedRate) + " of evaluations needed no FHIR read");
    text("t-latency", ms(data.latencyMs.p50) + " / " + ms(data.latencyMs.p95) + " ms");
    text("t-latency-sub", "p99 " + ms(data.latencyMs.p99) + " ms over " + num(data.latencyMs.count));
    var lat = data.latencyMs;
    var fhir = data.fhirFetchMs;
    draw("c-latency", {
      type: "bar",
      data: {
        labels: ["p50", "p90", "p95", "p99", "max"],
        datasets: [
          Series.dataset("count", "Whole hook", [lat.p50, lat.p90, lat.p95, lat.p99, lat.max].map(plotted)),
          Series.dataset("count (second)", "FHIR reads (when any)", [fhir.p50, fhir.p90, fhir.p95, fhir.p99, fhir.max].map(plotted)),
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
    fillTable("tbl-latency", [
      ["Whole hook", ms(lat.p50), ms(lat.p90), ms(lat.p95), ms(lat.p99), ms(lat.max)],
      ["FHIR reads (when any)", ms(fhir.p50), ms(fhir.p90), ms(fhir.p95), ms(fhir.p99), ms(fhir.max)],
    ]);
    var p = data.prefetch;
    draw("c-prefetch", {
      type: "doughnut",
      data: {
        labels: ["From the EHR's prefetch", "Read from the FHIR server"],
        datasets: [{ data: [plotted(p.keysPrefetched), plotted(p.keysFetched)], backgroundColor: [Series.fill("count"), Series.fill("count (second)")] }],
      },
    });
    fillTable("tbl-prefetch", [
      ["From the EHR's prefetch", num(p.keysPrefetched)],
      ["Read from the FHIR server", num(p.keysFetched)],
    ]);

    var access = data.access;
    text("access-calls", num(access.calls));
    fillTable(
      "tbl-access",
      Object.keys(access.byStatus).map(function (status) {
        return ["HTTP " + status, num(access.byStatus[status])];
      }).concat(
        Object.keys(access.refusals).map(function (reason) {
          return ["refused: " + reason, num(access.refusals[reason])];
        })
      )
    );

    text(
      "policies",
      "Policies: " + data.policies.map(function (x) { return x.title + " (version " + x.version + ")"; }).join("; ") + "."
    );
    text("generated", "Figures for " + data.range.from + " to " + data.range.to + ", generated " + data.generatedAt + ".");
  }

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (value) params.set(key, value);
    });
    return params.toString();
  }

  function load() {
    var q = query();
    var url = body.dataset.json + (q ? "?" + q : "");
    document.getElementById("json-link").href = url;
    document.getElementById("csv-link").href = body.dataset.export + (q ? "?" + q : "");
    document.getElementById("csv-feedback-link").href = body.dataset.export + "?" + (q ? q + "&" : "") + "kind=feedback";
    statusLine.className = "";
    statusLine.textContent = "Loading…";
    body.dataset.state = "loading";
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        return resp.json().then(function (data) {
          if (!resp.ok) {
            var issue = data.issue && data.issue[0];
            throw new Error(issue ? issue.diagnostics : "HTTP " + resp.status);
          }
          return data;
        });
      })
      .then(function (data) {
        render(data);
        history.replaceState(null, "", "?" + q);
        statusLine.textContent = "";
        body.dataset.renders = String(Number(body.dataset.renders) + 1);
        body.dataset.state = "ready";
      })
      .catch(function (err) {
        statusLine.className = "error";
        statusLine.textContent = "The figures could not be shown: " + err.message + ". Check the filters and apply them again.";
        body.dataset.state = "error";
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  document.querySelectorAll(".quick button").forEach(function (button) {
    button.addEventListener("click", function () {
      var to = document.getElementById("to").value;
      var end = to ? new Date(to + "T12:00:00Z") : new Date();
      var start = new Date(end.getTime() - (Number(button.dataset.days) - 1) * 86400000);
      document.getElementById("from").value = start.toISOString().slice(0, 10);
      load();
    });
  });
  load();
})();
