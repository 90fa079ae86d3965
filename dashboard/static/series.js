// One style per meaning, in every chart of the commissioners' dashboard and of the uptake
// report (which inlines this file): keyed by the outcome words of policy/outcome_words.py, so a
// pattern means the same thing wherever it is drawn. Okabe–Ito colours (safe for the common
// colour-vision deficiencies), each with a fill pattern of its own or of distinct lightness,
// so every series stays apart in greyscale and print (the browser tests measure it); a light
// fill has a dark border. "count" and "count (second)" are for
// figures that are not outcomes (override reasons, response times).
(function (root) {
  "use strict";

  var STYLES = {
    "meets": { colour: "#0072b2", pattern: "solid" },
    "already using": { colour: "#f0e442", pattern: "vlines", border: "#6b6400" },
    "potentially eligible": { colour: "#009e73", pattern: "cross" },
    "data missing": { colour: "#e69f00", pattern: "dots" },
    "does not meet": { colour: "#d55e00", pattern: "stripes" },
    "not assessed (order without an i-Port)": { colour: "#999999", pattern: "solid" },
    "gap": { colour: "#cc79a7", pattern: "backstripes" },
    "count": { colour: "#3d3d3d", pattern: "solid" },
    "count (second)": { colour: "#c4c4c4", pattern: "solid", border: "#5f5f5f" },
  };
  var SIZE = 10;
  var fills = {};

  function strokes(g, pattern) {
    g.beginPath();
    if (pattern === "stripes") {
      g.moveTo(0, SIZE); g.lineTo(SIZE, 0);
      g.moveTo(-SIZE / 2, SIZE / 2); g.lineTo(SIZE / 2, -SIZE / 2);
      g.moveTo(SIZE / 2, SIZE * 1.5); g.lineTo(SIZE * 1.5, SIZE / 2);
    } else if (pattern === "backstripes") {
      g.moveTo(0, 0); g.lineTo(SIZE, SIZE);
      g.moveTo(-SIZE / 2, SIZE / 2); g.lineTo(SIZE / 2, SIZE * 1.5);
      g.moveTo(SIZE / 2, -SIZE / 2); g.lineTo(SIZE * 1.5, SIZE / 2);
    } else if (pattern === "cross") {
      g.moveTo(0, SIZE / 2); g.lineTo(SIZE, SIZE / 2);
      g.moveTo(SIZE / 2, 0); g.lineTo(SIZE / 2, SIZE);
    } else if (pattern === "vlines") {
      g.moveTo(SIZE / 2, 0); g.lineTo(SIZE / 2, SIZE);
    }
    g.stroke();
  }

  // The fill of a series: its colour, or a canvas pattern of it with white marks.
  function fill(key) {
    var style = STYLES[key];
    if (!style) throw new Error("no chart style for the series '" + key + "'");
    if (style.pattern === "solid") return style.colour;
    if (fills[key]) return fills[key];
    var c = document.createElement("canvas");
    c.width = SIZE;
    c.height = SIZE;
    var g = c.getContext("2d");
    g.fillStyle = style.colour;
    g.fillRect(0, 0, SIZE, SIZE);
    g.strokeStyle = "#ffffff";
    g.fillStyle = "#ffffff";
    g.lineWidth = 2;
    if (style.pattern === "dots") {
      g.beginPath();
      g.arc(SIZE / 2, SIZE / 2, 2, 0, 2 * Math.PI);
      g.fill();
    } else {
      strokes(g, style.pattern);
    }
    fills[key] = g.createPattern(c, "repeat");
    return fills[key];
  }

  // A Chart.js dataset drawn in the style of ``key``; ``series`` records which, for tests.
  function dataset(key, label, data) {
    return {
      label: label,
      data: data,
      backgroundColor: fill(key),
      borderColor: STYLES[key].border || STYLES[key].colour,
      borderWidth: 1,
      series: key,
    };
  }

  // A long category label as at most ``lines`` lines of ``width`` characters, the last cut
  // with "…": labels never overlap; the table beside every chart has the full name.
  function abbreviate(label, width, lines) {
    var out = [];
    var line = "";
    var words = String(label).split(/\s+/);
    for (var i = 0; i < words.length; i++) {
      var word = words[i];
      if (line && (line + " " + word).length > width) {
        out.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
      if (out.length === lines) break;
    }
    if (out.length < lines && line) out.push(line);
    var whole = out.join(" ").length >= words.join(" ").trim().length;
    var last = out[out.length - 1] || "";
    if (last.length > width) last = last.slice(0, width - 1) + "…";
    else if (!whole) last = last.slice(0, width - 1).replace(/\s+$/, "") + "…";
    out[out.length - 1] = last;
    return out;
  }

  // Chart.js tick options for a category axis of long labels: each label abbreviated as it is
  // drawn, the chart's data (and so its tooltips) keeping the full name.
  function categoryTicks(width) {
    return {
      autoSkip: false,
      maxRotation: 0,
      callback: function (value) {
        return abbreviate(this.getLabelForValue(value), width, 2);
      },
    };
  }

  root.IportSeries = {
    STYLES: STYLES,
    fill: fill,
    dataset: dataset,
    abbreviate: abbreviate,
    categoryTicks: categoryTicks,
  };
})(window);
