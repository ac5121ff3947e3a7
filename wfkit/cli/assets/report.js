// wfkit run report: builds the page from the JSON in #wfkit-data. Every value goes into the
// DOM as text (textContent, attributes), never as HTML.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("wfkit-data").textContent);
  var K = D.exec_keys;
  var X = D.executions.map(function (row) {
    var e = {};
    for (var i = 0; i < K.length; i++) e[K[i]] = row[i];
    return e;
  });
  var span = D.span_ms || 1;
  var app = document.getElementById("app");

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === "text") node.textContent = attrs[k];
        else if (k === "cls") node.className = attrs[k];
        else if (k === "style") node.style.cssText = attrs[k];
        else node.setAttribute(k, attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 10000) return (v / 1000).toFixed(1) + " s";
    if (v >= 100) return v.toFixed(0) + " ms";
    return v.toFixed(1) + " ms";
  }
  function pct(v) { return Math.max(0, Math.min(100, (v / span) * 100)); }
  function badge(status) { return el("span", { cls: "badge st-" + status, text: status }); }
  function section(id, title) {
    var s = el("section", { id: id }, el("h2", { text: title }));
    app.appendChild(s);
    return s;
  }
  function kvTable(values, cls) {
    var names = Object.keys(values);
    if (!names.length) return el("p", { cls: "dim", text: "(empty)" });
    var tbody = el("tbody");
    names.forEach(function (name) {
      tbody.appendChild(el("tr", null, el("td", { text: name }), el("td", null, el("pre", { text: values[name] }))));
    });
    return el("table", { cls: "grid kv " + (cls || "") }, tbody);
  }

  // ---- header ----------------------------------------------------------------------------
  var header = el("header", null,
    el("h1", null, "Run " + D.run_id + " ", badge(D.status)),
    el("p", { cls: "meta" },
      "workflow ", el("b", { text: D.workflow }), " · ", el("code", { text: D.file }),
      " · started " + D.started_at + (D.finished_at ? " · finished " + D.finished_at : "") +
      " · duration " + ms(D.duration_ms) + " · " + X.length + " step execution(s)" +
      " · critical path " + ms(D.critical_ms)));
  app.appendChild(header);
  // runs linked by workflow steps: each one's page as `wfkit report ID` names it
  function runLink(id) { return el("a", { href: "wfkit-report-" + id + ".html", text: id }); }
  if (D.parent_run_id) {
    header.appendChild(el("p", { cls: "meta", id: "parent-run" }, "called by ", runLink(D.parent_run_id)));
  }
  if (D.child_run_ids.length) {
    var kids = el("p", { cls: "meta", id: "child-runs" }, "child runs: ");
    D.child_run_ids.forEach(function (id, i) { if (i) kids.appendChild(document.createTextNode(", ")); kids.appendChild(runLink(id)); });
    header.appendChild(kids);
  }
  header.appendChild(el("h3", { text: "Inputs" }));
  header.appendChild(kvTable(D.inputs, "inputs"));
  if (D.notes.length) {
    var notes = el("div", { cls: "note", id: "notes" }, el("b", { text: "Not on this page: " }));
    var ul = el("ul");
    D.notes.forEach(function (n) { ul.appendChild(el("li", { text: n })); });
    notes.appendChild(ul);
    app.appendChild(notes);
  }

  // ---- error chain -----------------------------------------------------------------------
  if (D.error_chain.length) {
    var es = section("error", "Error");
    var chain = el("ol", { cls: "chain" });
    D.error_chain.forEach(function (link, i) {
      var where = link.step_id ? " in " + link.step_id : "";
      if (link.item !== null && link.item !== undefined) where += " (item " + link.item + ")";
      chain.appendChild(el("li", { "data-step": link.step_id || "" },
        i ? el("div", { cls: "cause", text: "caused by" }) : null,
        el("b", { text: link.error_type }), where,
        el("pre", { cls: "err", text: link.message })));
    });
    es.appendChild(chain);
  }

  // ---- recovered errors: listed without a click -------------------------------------------
  var recovered = D.errors.filter(function (e) { return e.recovered; });
  if (recovered.length) {
    var rs = section("recovered", "Recovered errors (" + recovered.length + ")");
    var groups = {};
    var order = [];
    recovered.forEach(function (e) {
      var key = (e.step_id || "") + " " + e.error_type;
      if (!groups[key]) { groups[key] = []; order.push(key); }
      groups[key].push(e);
    });
    var list = el("ul", { cls: "recovered" });
    order.forEach(function (key) {
      var g = groups[key];
      var first = g[0].chain.length ? g[0].chain[0].message : "";
      list.appendChild(el("li", null, el("b", { text: g[0].error_type }),
        " in " + (g[0].step_id || "the workflow") + (g.length > 1 ? " (" + g.length + " times)" : "") + ": ",
        el("span", { cls: "dim", text: first.split("\n")[0] })));
    });
    rs.appendChild(list);
  }

  // ---- timeline --------------------------------------------------------------------------
  var tl = section("timeline", "Timeline");
  tl.className = "timeline";
  tl.appendChild(el("div", { cls: "legend" },
    el("span", null, el("i", { style: "background:#54aeff" }), "step"),
    el("span", null, el("i", { style: "background:#0969da" }), "attempt"),
    el("span", null, el("i", { style: "background:#cf222e" }), "failed"),
    el("span", null, el("i", { cls: "bar wait", style: "position:static" }), "retry wait"),
    el("span", null, el("i", { style: "background:#8250df" }), "◆ critical path"),
    el("span", null, "click a row for its attempts, output and state")));
  var axis = el("div", { cls: "tl-axis" });
  for (var t = 0; t <= 4; t++) {
    axis.appendChild(el("span", { style: "left:" + t * 25 + "%", text: ms((span * t) / 4) }));
  }
  tl.appendChild(axis);

  var byLane = {};
  X.forEach(function (e) { (byLane[e.lane] = byLane[e.lane] || []).push(e); });
  // rows in order of start (the store keeps completion order: a loop after its body)
  Object.keys(byLane).forEach(function (k) {
    byLane[k].sort(function (a, b) { return a.start_ms - b.start_ms || a.seq - b.seq; });
  });
  function rowOf(e) {
    var track = el("div", { cls: "track" });
    var container = e.step_type === "conditional" || e.step_type === "while_loop" ||
      e.step_type === "foreach" || e.step_type === "parallel_foreach";
    track.appendChild(el("div", {
      cls: "bar" + (container ? " container" : ""),
      style: "left:" + pct(e.start_ms) + "%;width:" + Math.max(pct(e.duration_ms), 0.15) + "%",
      title: e.step_id + ": " + e.status + ", " + ms(e.duration_ms),
    }));
    var tries = e.tries;
    for (var i = 0; i < tries.length; i++) {
      var a = tries[i];
      if (a.end_ms !== null) {
        track.appendChild(el("div", {
          cls: "bar try" + (a.status === "failed" ? " failed" : ""),
          style: "left:" + pct(a.start_ms) + "%;width:" + Math.max(pct(a.end_ms - a.start_ms), 0.1) + "%",
          title: "attempt " + a.attempt + ": " + a.status,
        }));
        var next = tries[i + 1];
        if (next) {
          track.appendChild(el("div", {
            cls: "bar wait",
            style: "left:" + pct(a.end_ms) + "%;width:" + Math.max(pct(next.start_ms - a.end_ms), 0.1) + "%",
            title: "retry wait " + ms(next.start_ms - a.end_ms),
          }));
        }
      }
    }
    var label = e.item !== null ? e.step_id + " [" + e.item + "]" : e.step_id;
    var info = e.status + " · " + ms(e.duration_ms);
    if (e.attempts > 1) info += " · " + e.attempts + " attempts";
    if (!tries.length && e.waits.length) {
      info += " · waited " + e.waits.map(function (w) { return ms(w[1]); }).join(", ");
    }
    var row = el("div", {
      cls: "row st-" + e.status + (e.critical ? " crit" : ""),
      "data-step": e.step_id, "data-status": e.status, "data-seq": String(e.seq),
      title: e.critical ? "on the critical path" : "",
    },
      el("div", { cls: "label" }, e.status === "failed" || e.status === "timed_out" ? el("span", { cls: "mark", text: "✗ " }) : null, label),
      track,
      el("div", { cls: "info", text: info }));
    row.addEventListener("click", function () { select(e, row); });
    return row;
  }
  function fillRows(box, rows, from) {
    var end = Math.min(rows.length, from + D.ui.rows_at_once);
    var frag = document.createDocumentFragment();
    for (var i = from; i < end; i++) frag.appendChild(rowOf(rows[i]));
    box.appendChild(frag);
    if (end < rows.length) {
      var more = el("button", { cls: "more", text: "show " + Math.min(D.ui.rows_at_once, rows.length - end) + " more of " + (rows.length - end) });
      more.addEventListener("click", function () { more.remove(); fillRows(box, rows, end); });
      box.appendChild(more);
    }
  }
  function laneBox(lane, open) {
    var rows = byLane[lane.index] || [];
    var box = el("div", { cls: "lane-rows" });
    var drawn = false;
    var head = el("button", { cls: "lane-head", type: "button", "aria-expanded": String(open) },
      el("span", { cls: "name", text: (open ? "▾ " : "▸ ") + lane.name }),
      el("span", { cls: "span" }, el("i", { style: "left:" + pct(lane.start_ms) + "%;width:" + Math.max(pct(lane.end_ms - lane.start_ms), 0.15) + "%" })),
      el("span", { cls: "info", text: lane.status + " · " + lane.executions + " execution(s)" + (lane.recovered ? " · " + lane.recovered + " recovered failure(s)" : "") }));
    var wrap = el("div", { cls: "lane st-" + lane.status, "data-lane": lane.name }, head, box);
    function setOpen(value) {
      open = value;
      head.setAttribute("aria-expanded", String(open));
      head.firstChild.textContent = (open ? "▾ " : "▸ ") + lane.name;
      box.hidden = !open;
      if (open && !drawn) { drawn = true; fillRows(box, rows, 0); }
    }
    head.addEventListener("click", function () { setOpen(!open); });
    wrap.setOpen = setOpen;
    setOpen(open);
    return wrap;
  }
  var laneByIndex = {};
  D.lanes.forEach(function (l) { laneByIndex[l.index] = l; });
  var itemLanes = D.lanes.filter(function (l) { return l.fan !== null; });
  var collapse = itemLanes.length > D.ui.collapse_after;
  D.lanes.forEach(function (lane) {
    if (lane.fan === null) tl.appendChild(laneBox(lane, true));
  });
  var fans = {};
  itemLanes.forEach(function (lane) {
    var fan = fans[lane.fan];
    if (!fan) {
      var members = itemLanes.filter(function (l) { return l.fan === lane.fan; });
      var failed = members.filter(function (l) { return l.status === "failed"; }).length;
      var openAll = el("button", { type: "button", cls: "expand-all", text: "expand all" });
      var closeAll = el("button", { type: "button", cls: "collapse-all", text: "collapse all" });
      fan = fans[lane.fan] = el("div", { cls: "fan", "data-fan": lane.fan },
        el("div", { cls: "fan-head" }, el("b", { text: lane.fan }),
          el("span", { cls: "dim", text: members.length + " item(s), " + failed + " failed" + (collapse ? " · collapsed past " + D.ui.collapse_after + " items; failed items open" : "") }),
          openAll, closeAll));
      openAll.addEventListener("click", function () { fan.querySelectorAll(".lane").forEach(function (n) { n.setOpen(true); }); });
      closeAll.addEventListener("click", function () { fan.querySelectorAll(".lane").forEach(function (n) { n.setOpen(false); }); });
      tl.appendChild(fan);
    }
    fan.appendChild(laneBox(lane, !collapse || lane.status === "failed"));
  });
  var details = el("div", { id: "details" }, el("p", { cls: "dim", text: "Select a step in the timeline to see its attempts, output and state." }));
  tl.appendChild(details);

  // ---- state -----------------------------------------------------------------------------
  var ss = section("state", "State");
  var picker = el("select", { id: "state-at" }, el("option", { value: "end", text: "at the end of the run (" + D.state_source + ")" }));
  D.top_steps.forEach(function (s, i) {
    picker.appendChild(el("option", { value: String(i), text: "after top-level step #" + s.index + " " + s.step_id }));
  });
  ss.appendChild(el("p", null, "State ", picker));
  ss.appendChild(el("p", { cls: "dim", id: "state-note", text: D.state_note }));
  var stateBox = el("div", { cls: "cols", id: "state-view" });
  ss.appendChild(stateBox);
  function stateAt(pos) {
    var tiers = { inputs: D.inputs, raw: {}, computed: {} };
    var cut = 0;
    for (var i = 0; i <= pos; i++) {
      D.top_steps[i].changes.forEach(function (c) {
        if (c.value === null) delete tiers[c.tier][c.name];
        else tiers[c.tier][c.name] = c.value;
        if (c.cut_chars) cut++;
      });
    }
    return { tiers: tiers, cut: cut };
  }
  function showState(value) {
    stateBox.textContent = "";
    var view;
    if (value === "end") {
      if (D.state_source === "none") {
        stateBox.appendChild(el("p", { cls: "dim", text: "No state was recorded for this run (it stopped before its first checkpoint)." }));
        return;
      }
      view = { tiers: D.state, cut: 0 };
    } else {
      view = stateAt(Number(value));
    }
    ["inputs", "raw", "computed"].forEach(function (tier) {
      if (!view.tiers[tier]) return;
      stateBox.appendChild(el("div", { cls: "tier", "data-tier": tier }, el("h3", { text: tier }), kvTable(view.tiers[tier])));
    });
    if (view.cut) stateBox.appendChild(el("p", { cls: "cut", text: view.cut + " value(s) shortened on this page" }));
  }
  picker.addEventListener("change", function () { showState(picker.value); });
  showState("end");

  function select(e, row) {
    var prev = document.querySelector(".row.sel");
    if (prev) prev.classList.remove("sel");
    row.classList.add("sel");
    details.textContent = "";
    var tags = [];
    if (e.critical) tags.push(el("span", { cls: "tag crit", text: "critical path" }));
    if (e.injected) tags.push(el("span", { cls: "tag injected", text: "injected fault" }));
    details.appendChild(el("h3", null, e.step_id + (e.item !== null ? " [item " + e.item + "]" : "") + " ", badge(e.status)));
    tags.forEach(function (t) { details.appendChild(t); });
    details.appendChild(el("p", { cls: "meta", text: e.step_type + " · started at +" + ms(e.start_ms) + " · " + ms(e.duration_ms) + " · " + e.attempts + " attempt(s)" + (e.error_type ? " · " + e.error_type : "") }));
    e.waits.forEach(function (w) {
      details.appendChild(el("p", { cls: "dim", text: "after attempt " + w[0] + ": retry planned in " + ms(w[1]) }));
    });
    e.errors.forEach(function (index) {
      var err = D.errors[index];
      var box = el("div", { cls: "err-box" }, el("b", { text: err.error_type }), " " + (err.recovered ? "(recovered)" : "") + (err.injected ? " (injected)" : "") + " at " + err.timestamp);
      err.chain.forEach(function (link, i) {
        box.appendChild(el("pre", { cls: "err", text: (i ? "caused by " + link.error_type + (link.step_id ? " in " + link.step_id : "") + ": " : "") + link.message }));
      });
      details.appendChild(box);
    });
    if (!e.tries.length) {
      details.appendChild(el("p", { cls: "dim", text: e.step_type === "shell_command" || e.step_type === "mcp_call" ? "No captured output was stored for this execution." : "This step type captures no output." }));
    }
    e.tries.forEach(function (a) {
      var box = el("div", { cls: "attempt", "data-attempt": String(a.attempt) },
        el("h3", null, "attempt " + a.attempt + " ", badge(a.status), a.exit_code !== null ? " exit " + a.exit_code : ""));
      if (a.omitted) {
        box.appendChild(el("p", { cls: "cut", text: "output not on this page (its output budget was spent): wfkit logs " + D.run_id + " " + e.step_id + " --attempt " + a.attempt }));
      } else {
        if (a.stdout) box.appendChild(el("div", null, el("span", { cls: "dim", text: "stdout (" + a.stdout_bytes + " bytes)" }), el("pre", { cls: "out", text: a.stdout })));
        if (a.stderr) box.appendChild(el("div", null, el("span", { cls: "dim", text: "stderr (" + a.stderr_bytes + " bytes)" }), el("pre", { cls: "out err", text: a.stderr })));
        if (!a.stdout && !a.stderr) box.appendChild(el("p", { cls: "dim", text: "(no output)" }));
        if (a.dropped_bytes) box.appendChild(el("p", { cls: "cut", text: a.dropped_bytes + " bytes were not kept by the store (its head/tail bound)" }));
        if (a.cut_chars) box.appendChild(el("p", { cls: "cut", text: a.cut_chars + " characters cut on this page" }));
      }
      details.appendChild(box);
    });
    var lane = laneByIndex[e.lane];
    if (lane && lane.fan !== null) {
      var own = el("div", { cls: "item-state" }, el("h3", { text: "State of " + lane.name + " at its end" }));
      if (lane.state) {
        ["inputs", "raw", "computed"].forEach(function (tier) {
          if (lane.state[tier]) own.appendChild(el("div", { cls: "tier", "data-tier": tier }, el("h3", { cls: "dim", text: tier }), kvTable(lane.state[tier])));
        });
      } else {
        own.appendChild(el("p", { cls: "dim", text: "Not available: an item's own state is kept only when the item succeeded." }));
      }
      details.appendChild(own);
    }
    if (e.top !== null && e.top !== undefined) {
      var pos = -1;
      D.top_steps.forEach(function (s, i) { if (s.index === e.top) pos = i; });
      if (pos >= 0) {
        picker.value = String(pos);
        showState(picker.value);
        details.appendChild(el("p", { cls: "dim", text: "The State section below now shows the state after top-level step " + D.top_steps[pos].step_id + "." }));
      }
    }
  }

  // ---- traces, breakers, messages --------------------------------------------------------
  var ts = section("traces", "Computed-field traces");
  if (!D.traced) {
    ts.appendChild(el("p", { cls: "dim", text: "This run was not traced: run it with --trace to record computed-field traces." }));
  } else if (!D.traces.length) {
    ts.appendChild(el("p", { cls: "dim", text: "The run was traced; no computed field was evaluated." }));
  } else {
    var tb = el("tbody");
    D.traces.forEach(function (r) {
      tb.appendChild(el("tr", null, el("td", { cls: "num", text: "+" + ms(r.start_ms) }), el("td", null, el("code", { text: r.field })),
        el("td", { text: r.step_id || "" }), el("td", { text: r.trigger }), el("td", null, el("pre", { text: r.input })),
        el("td", null, el("pre", { text: r.error ? "error: " + r.error : r.output })), el("td", { cls: "num", text: ms(r.duration_ms) })));
    });
    ts.appendChild(el("table", { cls: "grid" }, el("thead", null, el("tr", null,
      el("th", { text: "at" }), el("th", { text: "field" }), el("th", { text: "step" }), el("th", { text: "trigger" }),
      el("th", { text: "input" }), el("th", { text: "output" }), el("th", { text: "time" }))), tb));
  }
  var bs = section("breakers", "Circuit breakers");
  var names = Object.keys(D.breakers);
  if (!names.length) {
    bs.appendChild(el("p", { cls: "dim", text: "No circuit breaker state is stored for this workflow." }));
  } else {
    var bb = el("tbody");
    names.forEach(function (n) {
      var b = D.breakers[n];
      bb.appendChild(el("tr", null, el("td", null, el("code", { text: n })), el("td", null, badge(String(b.state))), el("td", { cls: "num", text: String(b.failures) })));
    });
    bs.appendChild(el("table", { cls: "grid" }, el("thead", null, el("tr", null, el("th", { text: "breaker" }), el("th", { text: "state" }), el("th", { text: "failures" }))), bb));
  }
  if (D.messages.length || D.warnings.length) {
    var ms_ = section("messages", "Messages");
    var list = el("ul");
    D.warnings.forEach(function (w) { list.appendChild(el("li", { cls: "cut", text: "warning: " + w })); });
    D.messages.forEach(function (m) { list.appendChild(el("li", { text: m })); });
    ms_.appendChild(list);
  }
  document.body.setAttribute("data-ready", "true");
})();
