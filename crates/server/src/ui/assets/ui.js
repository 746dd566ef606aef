// Keeps a berth page current: the server sends a `change` event whenever the cluster state
// moves, and the page fetches its live region (#live) again and swaps it in. Boxes marked
// `data-logs` are filled with the tail of a container's log: at load, after every change, and
// every few seconds while the page marks something to follow (`data-follow`, a task that has
// not stopped). No framework, no build step; everything fetched is HTML the server escaped.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) {
    return;
  }
  const LOG_PERIOD_MS = 5000;
  const shown = function () {
    const marked = live.querySelector("[data-index]");
    return marked ? marked.dataset.index : "";
  };
  const signedOut = function (response) {
    if (response.type === "opaqueredirect" || response.status === 401) {
      location.assign("/ui/login");
      return true;
    }
    return false;
  };

  let logsBusy = false;
  async function refreshLogs() {
    const boxes = document.querySelectorAll("[data-logs]");
    if (logsBusy || boxes.length === 0) {
      return;
    }
    logsBusy = true;
    try {
      for (const box of boxes) {
        const response = await fetch(box.dataset.logs, { credentials: "same-origin", redirect: "manual" });
        if (signedOut(response)) {
          return;
        }
        if (response.ok) {
          box.innerHTML = await response.text();
          box.dataset.loaded = "true";
        }
      }
    } catch (e) {
      // The server is away; the next change or tick tries again.
    } finally {
      logsBusy = false;
    }
  }

  let busy = false;
  let again = false;
  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const url = new URL(location.href);
      url.searchParams.set("fragment", "1");
      const response = await fetch(url, { credentials: "same-origin", redirect: "manual" });
      if (signedOut(response)) {
        return;
      }
      // A 404 or 403 fragment says the thing is gone (or no longer readable): show it.
      if (response.ok || response.status === 404 || response.status === 403) {
        live.innerHTML = await response.text();
        document.body.dataset.updated = shown();
        refreshLogs();
      }
    } catch (e) {
      // The server is away; the event source reconnects and the next change refreshes.
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  const source = new EventSource("/ui/events?since=" + encodeURIComponent(shown()));
  source.addEventListener("change", refresh);
  refreshLogs();
  setInterval(function () {
    if (live.querySelector("[data-follow]")) {
      refreshLogs();
    }
  }, LOG_PERIOD_MS);
})();
