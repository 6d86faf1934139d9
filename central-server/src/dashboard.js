"use strict";
// Served under a Content-Security-Policy without inline script: every handler is set here.
{
  const map = document.getElementById("map");
  map.addEventListener("load", () => { map.dataset.loaded = "yes"; });
  map.addEventListener("error", () => { map.dataset.loaded = "error"; });
}
let current = null;
const bands = new Set();
function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) { const s = document.createElement("span"); s.className = cls; s.textContent = text; td.appendChild(s); }
  else td.textContent = text;
  tr.appendChild(td);
}
function fill(id, rows, render, cols) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr"); const td = document.createElement("td");
    td.colSpan = cols; td.className = "empty"; td.textContent = "none"; tr.appendChild(td); body.appendChild(tr);
  }
  for (const r of rows) { const tr = document.createElement("tr"); render(tr, r); body.appendChild(tr); }
}
async function json(url) {
  const r = await fetch(url);
  // The session ended (idle, logout elsewhere, a new password): back to the login page.
  if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}
json("/api/me").then(me => {
  document.getElementById("who").textContent = me.name + " (" + me.role + ")";
}).catch(() => {});
const STATUS = {
  critical: "Brecha crítica / Critical gap", jammer_down: "Inhibidor caído / Jammer down",
  high: "Brecha alta / High gap", sensors_offline: "Sensor fuera de línea / Sensor offline",
  low: "Brecha baja / Low gap", no_data: "Sin datos / No data", ok: "Sin brechas / No gaps",
};
let sort = "status", order = "asc";
const regions = new Set();
for (const th of document.querySelectorAll("#overview th[data-sort]")) {
  th.onclick = () => {
    const s = th.dataset.sort;
    order = (s === sort && order === "asc") ? "desc" : "asc";
    sort = s; refresh();
  };
}
async function national() {
  const p = new URLSearchParams({ sort: sort, order: order });
  const region = document.getElementById("region").value;
  const find = document.getElementById("find").value.trim();
  if (region) p.set("region", region);
  if (find) p.set("q", find);
  const ov = await json("/api/overview?" + p.toString());
  for (const th of document.querySelectorAll("#overview th[data-sort]")) {
    th.className = th.dataset.sort === sort ? "sorted" : "";
  }
  const sel = document.getElementById("region");
  for (const r of ov.regions) if (!regions.has(r)) {
    regions.add(r); const o = document.createElement("option"); o.value = r; o.textContent = r; sel.appendChild(o);
  }
  const t = ov.totals;
  document.getElementById("totals").textContent = t.facilities + " establecimiento(s) / facilities — " +
    t.critical + " con brecha crítica / with a critical gap, " + t.jammer_down + " con inhibidor caído / with a jammer down, " +
    t.sensors_offline + " sensor(es) fuera de línea / sensors offline";
  fill("overview", ov.facilities, (tr, f) => {
    if (f.facility_id === current) tr.className = "active";
    tr.dataset.facility = f.facility_id;
    tr.onclick = () => { current = f.facility_id; refresh(); };
    cell(tr, f.name); cell(tr, f.region || "—");
    cell(tr, STATUS[f.status] || f.status, "ov-" + f.status);
    const g = f.worst_gap;
    cell(tr, g ? g.severity + " " + g.margin_db.toFixed(1) + " dB — " + g.zone + ", " + g.band + " " + g.technology +
      (g.pci != null ? " PCI " + g.pci : "") : "—", g ? "sev-" + g.severity : "");
    cell(tr, f.jammer_bands_down.length ? f.jammer_bands_down.join(", ") : "—", f.jammer_bands_down.length ? "st-down" : "");
    cell(tr, String(f.sensors_offline) + " / " + String(f.sensors_online + f.sensors_offline), f.sensors_offline > 0 ? "st-offline" : "");
    cell(tr, f.last_heard ? f.last_heard.replace("T", " ").slice(0, 19) : "—");
  }, 7);
  return ov.facilities;
}
async function refresh() {
  try {
    const fs = (await national()).map(f => ({ id: f.facility_id, name: f.name, configured: f.configured }));
    if (!current && fs.length) current = (fs.find(f => f.configured) || fs[0]).id;
    if (!current) { document.getElementById("updated").textContent = "no facility yet"; return; }
    const base = "/api/facilities/" + encodeURIComponent(current);
    const band = document.getElementById("band").value;
    const q = band ? "?band=" + encodeURIComponent(band) : "";
    const [gaps, jammers, sensors] = await Promise.all([
      json(base + "/gaps" + q), json(base + "/jammers"), json(base + "/sensors")]);
    const f = fs.find(x => x.id === current);
    document.getElementById("fname").textContent = f ? f.name : current;
    if (f && f.configured) {
      document.getElementById("map").src = base + "/map.svg" + q + (q ? "&" : "?") + "t=" + Date.now();
    }
    fill("gaps", gaps, (tr, g) => {
      cell(tr, g.zone); cell(tr, g.band); cell(tr, g.technology);
      cell(tr, g.pci != null ? "PCI " + g.pci : (g.arfcn != null ? "ARFCN " + g.arfcn : "—"));
      cell(tr, (g.center_hz / 1e6).toFixed(1)); cell(tr, g.margin_db.toFixed(1));
      cell(tr, g.severity, "sev-" + g.severity); cell(tr, g.detector); cell(tr, g.sensor_id);
      cell(tr, g.opened_at.replace("T", " ").slice(0, 19));
    }, 10);
    fill("jammers", jammers, (tr, j) => {
      cell(tr, j.band); cell(tr, j.zone); cell(tr, j.state, "st-" + j.state);
      cell(tr, j.noise_rise_db.toFixed(1)); cell(tr, j.sensor_id);
    }, 5);
    fill("sensors", sensors, (tr, s) => {
      cell(tr, s.sensor_id); cell(tr, s.zone); cell(tr, s.state, "st-" + s.state);
      cell(tr, s.last_seen.replace("T", " ").slice(0, 19));
      const h = (s.status && s.status.health) || {};
      cell(tr, h.sweeps != null ? String(h.sweeps) : "—"); cell(tr, h.queue_depth != null ? String(h.queue_depth) : "—");
      cell(tr, String(s.missing_messages || 0), s.missing_messages > 0 ? "st-degraded" : "");
    }, 7);
    const sel = document.getElementById("band");
    for (const g of gaps) if (!bands.has(g.band)) {
      bands.add(g.band); const o = document.createElement("option"); o.value = g.band; o.textContent = g.band; sel.appendChild(o);
    }
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "server unreachable: " + e.message;
  }
}
document.getElementById("band").onchange = refresh;
document.getElementById("region").onchange = refresh;
document.getElementById("find").oninput = refresh;
refresh();
setInterval(refresh, 5000);
