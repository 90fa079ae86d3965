// The commissioner dashboard: fetches /analytics.json for the chosen dates and draws it.
// No inline script (the page's Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";

  var COLOURS = {
    "meets-criteria": "#007f3b",
    "does-not-meet-criteria": "#d5281b",
    "insufficient-information": "#ed8b00",
    notMet: "#d5281b",
    unknown: "#ed8b00",
    blue: "#005eb8",
    grey: "#768692",
  };
  var OUTCOME_LABELS = {
    "meets-criteria": "Meets criteria",
    "does-not-meet-criteria": "Does not meet",
    "insufficient-information": "Not enough information",
    "no-decision": "No i-Port order",
  };
  var charts = {};
  var body = document.body;
  var form = document.getElementById("filters");
  var statusLine = document.getElementById("status");

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }
  function num(x) {
    return x === null || x === undefined ? "–" : Number(x).toLocaleString("en-GB");
  }
  function pct(x) {
    return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%";
  }
  function ms(x) {
    return x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-GB");
  }

  // Long category labels wrap onto several lines instead of being cut off.
  function wrap(label, width) {
    var lines = [];
    var line = "";
    String(label).split(" ").forEach(function (word) {
      if (line && (line + " " + word).length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
    });
    if (line) lines.push(line);
    return lines;
  }

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

  function fillTable(id, rows) {
    var tbody = document.querySelector("#" + id + " tbody");
    tbody.replaceChildren();
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (cell, i) {
        var td = document.createElement("td");
        td.textContent = cell;
        if (i > 0) td.className = "n";
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = 4;
      td.textContent = "None in this period.";
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  function render(data) {
    var t = data.totals;
    text("t-evaluations", num(t.evaluations));
    text("t-cards", num(t.cards));
    text("t-feedback", num(t.feedback));
    text("t-feedback-rate", t.feedbackRate === null ? "" : pct(t.feedbackRate) + " of cards");
    text("t-override", pct(t.overrideRate));
    text("t-override-sub", num(t.overridden) + " overridden, " + num(t.accepted) + " accepted");
    text("t-prefetch", pct(data.prefetch.hitRate));
    text(
      "t-prefetch-sub",
      pct(data.prefetch.fullyPrefetchedRate) + " of evaluations needed no FHIR read"
    );
    text("t-latency", ms(data.latencyMs.p50) + " / " + ms(data.latencyMs.p95) + " ms");
    text("t-latency-sub", "p99 " + ms(data.latencyMs.p99) + " ms over " + num(data.latencyMs.count));

    var days = data.cardsPerDay;
    draw("c-cards", {
      type: "bar",
      data: {
        labels: days.map(function (d) { return d.day; }),
        datasets: ["meets-criteria", "does-not-meet-criteria", "insufficient-information"].map(
          function (o) {
            return {
              label: OUTCOME_LABELS[o],
              data: days.map(function (d) { return d[o]; }),
              backgroundColor: COLOURS[o],
            };
          }
        ),
      },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });

    var reasons = data.overrideReasons;
    draw("c-reasons", {
      type: "bar",
      data: {
        labels: reasons.map(function (r) { return wrap(r.display, 24); }),
        datasets: [{ label: "Overrides", data: reasons.map(function (r) { return r.count; }), backgroundColor: COLOURS.blue }],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false } } },
      },
    });
    fillTable("tbl-reasons", reasons.map(function (r) { return [r.display, num(r.count)]; }));

    var blocking = data.blockingCriteria.slice(0, 10);
    draw("c-blocking", {
      type: "bar",
      data: {
        labels: blocking.map(function (b) { return wrap(b.title, 24); }),
        datasets: [
          { label: "Not met", data: blocking.map(function (b) { return b.notMet; }), backgroundColor: COLOURS.notMet },
          { label: "Unknown", data: blocking.map(function (b) { return b.unknown; }), backgroundColor: COLOURS.unknown },
        ],
      },
      options: {
        indexAxis: "y",
        scales: {
          x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
          y: { stacked: true, ticks: { autoSkip: false } },
        },
      },
    });
    fillTable("tbl-blocking", blocking.map(function (b) { return [b.title, num(b.notMet), num(b.unknown)]; }));

    var lat = data.latencyMs;
    var fhir = data.fhirFetchMs;
    draw("c-latency", {
      type: "bar",
      data: {
        labels: ["p50", "p90", "p95", "p99", "max"],
        datasets: [
          { label: "Whole hook", data: [lat.p50, lat.p90, lat.p95, lat.p99, lat.max], backgroundColor: COLOURS.blue },
          { label: "FHIR reads (when any)", data: [fhir.p50, fhir.p90, fhir.p95, fhir.p99, fhir.max], backgroundColor: COLOURS.grey },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });

    var p = data.prefetch;
    draw("c-prefetch", {
      type: "doughnut",
      data: {
        labels: ["From the EHR's prefetch", "Read from the FHIR server"],
        datasets: [{ data: [p.keysPrefetched, p.keysFetched], backgroundColor: [COLOURS["meets-criteria"], COLOURS.grey] }],
      },
    });

    var byOutcome = data.feedbackByCardOutcome;
    fillTable(
      "tbl-by-outcome",
      Object.keys(byOutcome).map(function (k) {
        var v = byOutcome[k];
        return [OUTCOME_LABELS[k] || k, num(v.accepted), num(v.overridden), pct(v.overrideRate)];
      })
    );

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
        statusLine.textContent = "Could not load the figures: " + err.message;
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
