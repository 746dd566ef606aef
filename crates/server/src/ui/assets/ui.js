// Keeps a berth page current: the server sends a `change` event whenever the cluster state
// moves, and the page fetches its <main> again and swaps it in. No framework, no build step.
(function () {
  "use strict";
  const main = document.getElementById("main");
  if (!main) {
    return;
  }
  const shown = function () {
    const marked = main.querySelector("[data-index]");
    return marked ? marked.dataset.index : "";
  };
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
      if (response.type === "opaqueredirect" || response.status === 401) {
        location.assign("/ui/login");
        return;
      }
      if (response.ok) {
        main.innerHTML = await response.text();
        document.body.dataset.updated = shown();
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
})();
