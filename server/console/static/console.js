// Berth console: small enhancements of server-rendered pages. Everything here reads text into the DOM with
// textContent (never innerHTML), so nothing the server sends is ever run as markup.
"use strict";

(function () {
  // Times: <time datetime> in the browser's time zone.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = d.toLocaleString();
      }
    });
  }

  // Copy buttons.
  function copyText(text, button) {
    function done() {
      var old = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = old; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(); });
    } else {
      fallback();
    }
    function fallback() {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.style.position = "fixed";
      ta.style.opacity = "0";
      document.body.appendChild(ta);
      ta.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selectable */ }
      document.body.removeChild(ta);
    }
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-copy]");
    if (b) {
      copyText(b.getAttribute("data-copy"), b);
    }
  });

  // Confirmations.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });

  // Trigger forms: show the field the chosen filter uses.
  function filterFields() {
    document.querySelectorAll("[data-filter-select]").forEach(function (sel) {
      var form = sel.form;
      function sync() {
        form.querySelectorAll("[data-filter]").forEach(function (el) {
          el.hidden = el.getAttribute("data-filter") !== sel.value;
        });
      }
      sel.addEventListener("change", sync);
      sync();
    });
  }

  // Build rule forms: the repository's branches and tags, read from its Git server after the page loaded.
  function loadRefs() {
    var state = document.querySelector("[data-refs-url]");
    if (!state) return;
    state.textContent = "Reading the Git repository's branches and tags…";
    function fill(id, names) {
      var dl = document.getElementById(id);
      (names || []).forEach(function (n) {
        var o = document.createElement("option");
        o.value = n;
        dl.appendChild(o);
      });
    }
    fetch(state.getAttribute("data-refs-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        return r.json().then(function (d) {
          if (!r.ok) throw new Error(d.message || ("HTTP " + r.status));
          return d;
        });
      })
      .then(function (d) {
        fill("refs-BRANCH", d.branches);
        fill("refs-TAG", d.tags);
        state.textContent = (d.branches || []).length + " branches and " + (d.tags || []).length + " tags to pick from" +
          (d.truncated ? " (the first ones)" : "") + "; names and patterns may also be typed.";
        state.setAttribute("data-loaded", "true");
      })
      .catch(function (e) {
        state.textContent = "The Git repository's branches and tags could not be read (" + e.message + "); type the names.";
        state.setAttribute("data-loaded", "error");
      });
  }

  // Build rule forms: the branch/tag field offers the repository's branches or its tags, as the type says.
  function refPickers() {
    document.querySelectorAll("select[data-ref-type]").forEach(function (sel) {
      var input = document.getElementById(sel.getAttribute("data-ref-type"));
      if (!input || !input.hasAttribute("list")) return;
      sel.addEventListener("change", function () {
        input.setAttribute("list", "refs-" + (sel.value === "TAG" ? "TAG" : "BRANCH"));
      });
    });
  }

  // Trigger forms: say how many versions are picked, and when that is more than the API takes.
  function tagPickers() {
    document.querySelectorAll("select[multiple][data-max]").forEach(function (sel) {
      var max = parseInt(sel.getAttribute("data-max"), 10);
      var out = document.getElementById(sel.getAttribute("aria-describedby"));
      function sync() {
        var n = sel.selectedOptions.length;
        var over = n > max;
        if (over) sel.setAttribute("aria-invalid", "true"); else sel.removeAttribute("aria-invalid");
        if (out) out.textContent = n ? n + " picked" + (over ? ": a trigger takes at most " + max + " tags" : "") : "";
      }
      sel.addEventListener("change", sync);
      sync();
    });
  }

  // Policy editor: say at once when the text is not JSON (the server says what else is wrong).
  function jsonEditors() {
    document.querySelectorAll("textarea[data-json-editor]").forEach(function (ta) {
      var out = document.getElementById("doc-error");
      ta.addEventListener("input", function () {
        try {
          JSON.parse(ta.value);
          ta.removeAttribute("aria-invalid");
          if (out && out.dataset.local) { out.hidden = true; out.textContent = ""; delete out.dataset.local; }
        } catch (e) {
          ta.setAttribute("aria-invalid", "true");
          if (out) { out.hidden = false; out.dataset.local = "1"; out.textContent = "Not valid JSON: " + e.message; }
        }
      });
    });
  }

  // Build page: follow the log and the status without a reload.
  var finalStates = { SUCCESS: 1, FAILED: 1, CANCELED: 1, BLOCKED: 1 };
  var statusClass = function (s) {
    if (s === "SUCCESS" || s === "DONE" || s === "TRIGGERED") return "st-ok";
    if (s === "FAILED" || s === "BLOCKED") return "st-bad";
    if (s === "CANCELED" || s === "NOT_TRIGGERED" || s === "NOT_SCANNED") return "st-off";
    return "st-run";
  };

  function badge(s) {
    var b = document.createElement("span");
    b.className = "badge " + statusClass(s);
    b.textContent = s;
    return b;
  }

  function took(st) {
    if (!st.started_at) return "";
    var end = st.finished_at ? new Date(st.finished_at) : new Date();
    var ms = end - new Date(st.started_at);
    return ms < 1000 ? ms + "ms" : (ms / 1000).toFixed(1) + "s";
  }

  function followBuild(sec) {
    var pre = document.getElementById("build-log");
    var state = document.getElementById("log-state");
    var logURL = sec.getAttribute("data-log-url");
    var statusURL = sec.getAttribute("data-status-url");
    var running = sec.getAttribute("data-final") !== "true";

    function stickToBottom() {
      return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    }

    function readLog() {
      state.textContent = running ? "Following the log…" : "";
      fetch(logURL + (running ? "?follow=true" : ""), { credentials: "same-origin", headers: { "Accept": "text/plain" } })
        .then(function (resp) {
          if (!resp.ok) {
            return resp.text().then(function (t) {
              var msg = t;
              try { msg = JSON.parse(t).message || t; } catch (e) { /* plain text */ }
              throw new Error(msg);
            });
          }
          var reader = resp.body.getReader();
          var dec = new TextDecoder();
          function pump() {
            return reader.read().then(function (r) {
              if (r.done) {
                var rest = dec.decode();
                if (rest) pre.appendChild(document.createTextNode(rest));
                state.textContent = "";
                return;
              }
              var stick = stickToBottom();
              pre.appendChild(document.createTextNode(dec.decode(r.value, { stream: true })));
              if (stick) pre.scrollTop = pre.scrollHeight;
              return pump();
            });
          }
          return pump();
        })
        .catch(function (e) { state.textContent = "The log could not be read: " + e.message; });
    }

    function render(b) {
      var st = document.getElementById("build-status");
      st.textContent = b.status;
      st.className = "badge " + statusClass(b.status);
      document.getElementById("build-commit").textContent = b.commit || "";
      document.getElementById("build-digest").textContent = b.digest || "";
      document.getElementById("build-error").textContent = b.error || "";
      var v = document.getElementById("build-version");
      if (v) v.hidden = !b.digest;
      var tb = document.getElementById("build-stages");
      while (tb.firstChild) tb.removeChild(tb.firstChild);
      (b.stages || []).forEach(function (s) {
        var tr = document.createElement("tr");
        var name = document.createElement("td"); name.textContent = s.name;
        var status = document.createElement("td"); status.appendChild(badge(s.status));
        var started = document.createElement("td");
        if (s.started_at) { var t = document.createElement("time"); t.setAttribute("datetime", s.started_at); t.textContent = s.started_at; started.appendChild(t); }
        var dur = document.createElement("td"); dur.textContent = took(s);
        tr.append(name, status, started, dur);
        tb.appendChild(tr);
      });
      localTimes(tb);
      var cancel = document.getElementById("cancel-form");
      if (cancel) cancel.hidden = !!finalStates[b.status];
    }

    function poll() {
      fetch(statusURL, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (d.build) {
            render(d.build);
            if (d.final) return;
          }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    }

    readLog();
    if (running) poll();
  }

  function start() {
    localTimes(document);
    filterFields();
    refPickers();
    loadRefs();
    tagPickers();
    jsonEditors();
    var sec = document.getElementById("build");
    if (sec) followBuild(sec);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
