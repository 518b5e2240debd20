// HMU gallery player: builds the grids from window.HMU_GALLERY (data.js) and plays every
// motion as a stick figure on its canvas. No dependencies, no network.
"use strict";

const errors = [];
window.addEventListener("error", (e) => {
  errors.push(String(e.message));
  document.body.dataset.errors = JSON.stringify(errors);
});

const timers = []; // the running players' intervals
const SIZE = 150; // canvas pixels
const YAW = 0.5; // radians: the camera looks from the front-left

// Project a motion's frames (flat integer cm) to canvas points; one scale for the whole motion.
function projector(frames) {
  const c = Math.cos(YAW), s = Math.sin(YAW);
  let minU = Infinity, maxU = -Infinity, minV = Infinity, maxV = -Infinity;
  for (let i = 0; i < frames.length; i += 3) {
    const u = frames[i] * c + frames[i + 2] * s, v = frames[i + 1];
    minU = Math.min(minU, u); maxU = Math.max(maxU, u);
    minV = Math.min(minV, v); maxV = Math.max(maxV, v);
  }
  const scale = (SIZE * 0.85) / Math.max(maxU - minU, maxV - minV, 1);
  const u0 = (minU + maxU) / 2, v0 = (minV + maxV) / 2;
  return (x, y, z) => [SIZE / 2 + (x * c + z * s - u0) * scale,
                       SIZE / 2 - (y - v0) * scale];
}

function drawFrame(ctx, cell, project, chains, colours, frame) {
  const base = frame * 22 * 3, f = cell.frames;
  ctx.clearRect(0, 0, SIZE, SIZE);
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  chains.forEach((chain, k) => {
    ctx.strokeStyle = colours[k];
    ctx.beginPath();
    chain.forEach((j, n) => {
      const [px, py] = project(f[base + 3 * j], f[base + 3 * j + 1], f[base + 3 * j + 2]);
      if (n === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  });
}

function player(cell, data) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIZE;
  const ctx = canvas.getContext("2d");
  const count = cell.frames.length / 66, project = projector(cell.frames);
  let drawn = 0;
  const tick = () => {
    drawFrame(ctx, cell, project, data.chains, data.colours, drawn % count);
    drawn += 1;
    canvas.dataset.frame = String(drawn); // frames drawn so far (tests read it)
  };
  tick();
  timers.push(setInterval(tick, 1000 / data.fps));
  return canvas;
}

function verdict(cell) {
  const line = document.createElement("div");
  const p = cell.toxic === null ? "n/a" : cell.toxic.toFixed(2);
  const toxic = cell.toxic_flag === true;
  line.innerHTML = `<span class="${toxic ? "toxic" : ""}">p(toxic) ${p}</span> · ` +
    `<span class="${cell.strike_flag ? "strike" : ""}">` +
    `${cell.strike_flag ? "strike" : "no strike"} (${cell.strike.toFixed(2)})</span>`;
  return line;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function buildGrid(g, data, kind) {
  const section = el("section", "grid-section");
  section.dataset.dataset = g.dataset;
  section.dataset.model = g.model;
  section.appendChild(el("h2", "", `${g.dataset} · ${g.model}`));
  const table = el("table", "grid"), head = el("tr");
  head.appendChild(el("th", "", "prompt"));
  g.methods.forEach((m) => head.appendChild(el("th", "", m.label)));
  table.appendChild(head);
  g.prompts.forEach((prompt, row) => {
    if (kind !== "all" && prompt.kind !== kind) return;
    const tr = el("tr");
    const th = el("th", "prompt");
    th.appendChild(el("span", `kind ${prompt.kind}`, prompt.kind));
    th.appendChild(document.createTextNode(prompt.prompt));
    tr.appendChild(th);
    g.methods.forEach((m) => {
      const td = el("td", "cell");
      const cell = m.cells.find((c) => c.row === row);
      if (cell === undefined) { td.textContent = "—"; tr.appendChild(td); return; }
      td.title = `${m.label}: ${prompt.prompt} (${prompt.length} frames)`;
      td.appendChild(player(cell, data));
      td.appendChild(verdict(cell));
      td.appendChild(el("div", "caption", prompt.prompt));
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  section.appendChild(table);
  return section;
}

function fillSelect(id, values) {
  const select = document.getElementById(id);
  ["all", ...values].forEach((v) => select.appendChild(el("option", "", v)));
  return select;
}

function render(data) {
  const value = (id) => document.getElementById(id).value;
  const root = document.getElementById("grids");
  // stop the old players: replacing the nodes would leave their intervals running
  timers.splice(0).forEach((id) => clearInterval(id));
  root.replaceChildren();
  data.grids
    .filter((g) => value("f-dataset") === "all" || g.dataset === value("f-dataset"))
    .filter((g) => value("f-model") === "all" || g.model === value("f-model"))
    .forEach((g) => root.appendChild(buildGrid(g, data, value("f-kind"))));
  document.body.dataset.cells = String(root.querySelectorAll("canvas").length);
}

function main() {
  const data = window.HMU_GALLERY;
  if (!data) return; // the page keeps its "no data" note
  const unique = (key) => [...new Set(data.grids.map((g) => g[key]))];
  const selects = [fillSelect("f-dataset", unique("dataset")),
                   fillSelect("f-model", unique("model")), fillSelect("f-kind", data.kinds)];
  // index.html#dataset=humanml3d&kind=implicit opens with those filters (a link to a view)
  const wanted = new URLSearchParams(window.location.hash.slice(1));
  selects.forEach((s) => {
    const v = wanted.get(s.id.slice(2));
    if (v !== null && [...s.options].some((o) => o.value === v)) s.value = v;
    s.addEventListener("change", () => render(data));
  });
  render(data);
  document.body.dataset.ready = "true";
}

main();
