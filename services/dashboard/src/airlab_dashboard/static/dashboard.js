// The research page, live: an EventSource on the research's event stream (the browser resends the last
// event id when it reconnects, so nothing is missed); after each event the page fetches its live part
// again and swaps it in, and redraws the chart. window.airlabLive records, for each event, the time from
// the event's creation to its appearance on the page (the browser test reads it).
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const id = live.dataset.research;
  window.airlabLive = { updates: 0, latenciesMs: [] };

  function drawChart() {
    const holder = document.getElementById("chart");
    if (!holder || !window.Plotly) return;
    const data = JSON.parse(holder.dataset.chart || "{}");
    const trace = (points, name, symbol) => ({
      x: points.map((p) => p.x), y: points.map((p) => p.y), text: points.map((p) => p.label),
      name: name, mode: "markers", type: "scatter", marker: { symbol: symbol, size: 9 },
      hovertemplate: "%{text}<br>%{y:.4f}<extra>" + name + "</extra>",
    });
    const traces = [trace(data.validation || [], "validation", "circle"), trace(data.test || [], "test", "diamond")];
    window.Plotly.react(holder, traces, {
      margin: { t: 10, r: 10, b: 40, l: 60 }, height: 280,
      xaxis: { title: { text: "finished experiment" }, tickformat: "d" },
      yaxis: { title: { text: data.metric || "score" } },
      legend: { orientation: "h" },
    }, { displaylogo: false, responsive: true });
  }

  let pending = null;
  let waiting = [];
  async function refresh() {
    pending = null;
    const created = waiting;
    waiting = [];
    const answer = await fetch("/researches/" + id + "/live", { credentials: "same-origin" });
    if (answer.status === 401 || answer.redirected) { window.location = "/login"; return; }
    if (!answer.ok) return;
    const focused = document.activeElement && document.activeElement.id;
    // What the person typed (a reason to cancel, answers) survives the swap: an event arriving while
    // they type must not wipe the form they are about to submit.
    const typed = {};
    for (const field of live.querySelectorAll("input[id]:not([type=hidden]), textarea[id], select[id]")) {
      if (field.value) typed[field.id] = field.value;
    }
    live.innerHTML = await answer.text();
    for (const [fieldId, value] of Object.entries(typed)) {
      const field = document.getElementById(fieldId);
      if (field && live.contains(field)) field.value = value;
    }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    drawChart();
    const now = Date.now();
    for (const t of created) window.airlabLive.latenciesMs.push(now - t);
    window.airlabLive.updates += 1;
    live.dataset.updated = String(window.airlabLive.updates);
  }

  const source = new EventSource("/researches/" + id + "/stream");
  source.addEventListener("research", (message) => {
    const event = JSON.parse(message.data);
    live.dataset.sequence = String(event.sequence);
    waiting.push(event.time);
    if (!pending) pending = setTimeout(refresh, 150);  // a burst of events: one refresh
  });
  drawChart();
})();
