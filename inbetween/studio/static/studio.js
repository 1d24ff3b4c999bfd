// inbetween studio: the page. State lives here; every job is `inbetween generate` run by the server.
"use strict";

const state = {
  board: { fps: 12, between: 7, shots: [{ prompts: [""] }] },
  options: null,        // /api/options: {groups: {group: [{name, about, settings}]}, defaults}
  choices: {},          // {group: option name}
  keyframeRun: null,    // latest finished run with keyframes to fill
};

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

// ---- storyboard editor ----

function promptText(entry) { return typeof entry === "string" ? entry : (entry.prompt || ""); }

function renderShots() {
  const shots = $("shots");
  shots.replaceChildren();
  state.board.shots.forEach((shot, s) => {
    const entries = shot.prompts.map((entry, k) => element("div", { class: "keyframe-entry" },
      typeof entry === "string" ? "" : element("img", { src: `/uploads/${entry.image}`, alt: "own picture" }),
      element("input", {
        type: "text", value: promptText(entry), placeholder: "a prompt for this keyframe", "aria-label": "prompt",
        oninput: (event) => {
          shot.prompts[k] = typeof entry === "string" ? event.target.value : { ...entry, prompt: event.target.value };
        },
      }),
      element("label", { class: "file-button", title: "use your own picture for this keyframe" }, "picture…",
        element("input", { type: "file", accept: "image/*", onchange: (event) => usePicture(shot, k, event) })),
      element("button", { type: "button", text: "×", title: "remove this keyframe",
        onclick: () => { shot.prompts.splice(k, 1); if (!shot.prompts.length) state.board.shots.splice(s, 1); renderShots(); } })));
    const between = element("input", { type: "number", min: "0", value: shot.between ?? "", placeholder: "board's",
      oninput: (event) => { if (event.target.value === "") delete shot.between; else shot.between = Number(event.target.value); } });
    shots.append(element("div", { class: "shot" },
      element("div", { class: "row" }, element("strong", { text: `Shot ${s + 1}` }), element("label", {}, "between ", between),
        element("button", { type: "button", text: "Remove shot", onclick: () => { state.board.shots.splice(s, 1); renderShots(); } })),
      ...entries,
      element("button", { type: "button", text: "Add keyframe", onclick: () => { shot.prompts.push(""); renderShots(); } })));
  });
}

async function uploadPicture(file) {
  const form = new FormData();
  form.append("image", file);
  return (await api("/api/upload", { method: "POST", body: form })).image;
}

async function usePicture(shot, k, event) {
  const file = event.target.files[0];
  if (!file) return;
  try {
    shot.prompts[k] = { image: await uploadPicture(file), prompt: promptText(shot.prompts[k]) || file.name };
    renderShots();
    showError(null);
  } catch (error) { showError(error.message); }
}

function setBoard(board) {
  state.board = board;
  $("fps").value = board.fps ?? 12;
  $("between").value = board.between ?? 7;
  renderShots();
}

function currentBoard() {
  return { ...state.board, fps: Number($("fps").value), between: Number($("between").value) };
}

function saveYaml() {
  // YAML is a superset of JSON: the file the command line reads, one storyboard object.
  const blob = new Blob([JSON.stringify(currentBoard(), null, 2) + "\n"], { type: "application/yaml" });
  const link = element("a", { href: URL.createObjectURL(blob), download: "storyboard.yaml" });
  link.click();
  URL.revokeObjectURL(link.href);
}

async function loadYaml(event) {
  const file = event.target.files[0];
  if (!file) return;
  try {
    setBoard(await api("/api/storyboard/read", { method: "POST", body: await file.text() }));
    showError(null);
  } catch (error) { showError(error.message); }
  event.target.value = "";
}

// ---- stages ----

function settingInput(group, setting) {
  const id = `setting-${group}-${setting.key}`;
  const input = typeof setting.value === "boolean"
    ? element("input", { type: "checkbox", id })
    : element("input", { type: typeof setting.value === "number" ? "number" : "text", step: "any", id,
                         value: setting.value ?? "" });
  if (typeof setting.value === "boolean") input.checked = setting.value;
  input.dataset.key = `${group}.${setting.key}`;
  input.dataset.default = JSON.stringify(setting.value);
  return [element("label", { for: id, text: setting.key, title: setting.help }), input];
}

function renderStages() {
  const panel = $("stages");
  panel.replaceChildren();
  for (const [group, options] of Object.entries(state.options.groups)) {
    const chosen = options.find((option) => option.name === state.choices[group]);
    const select = element("select", { id: `choice-${group}`, onchange: (event) => { state.choices[group] = event.target.value; renderStages(); } },
      ...options.map((option) => element("option", { value: option.name, text: option.name })));
    select.value = state.choices[group];
    panel.append(element("div", { class: "stage" },
      element("label", {}, `${group} `, select), element("div", { class: "hint", text: chosen.about }),
      element("div", { class: "settings" }, ...chosen.settings.flatMap((setting) => settingInput(group, setting)))));
  }
}

function settingValue(input) {
  const fallback = JSON.parse(input.dataset.default);
  if (input.type === "checkbox") return input.checked;
  if (input.type === "number") return input.value === "" ? null : Number(input.value);
  if (input.value === "" && fallback === null) return null;
  return input.value;
}

function currentStages() {
  const settings = {};
  for (const input of $("stages").querySelectorAll("[data-key]")) {
    const value = settingValue(input);
    if (JSON.stringify(value) !== input.dataset.default) settings[input.dataset.key] = value;
  }
  return { choices: { ...state.choices }, settings };
}

// ---- jobs ----

function showJob(job) {
  const bars = job.progress || [];
  const bar = bars[bars.length - 1];
  $("status").textContent = job.state === "idle" ? "idle"
    : `${job.action}: ${job.state}` + (bar && job.state === "running" ? ` (${bar.desc} ${bar.n}/${bar.total ?? "?"})` : "");
  $("progress").hidden = job.state !== "running";
  if (bar && bar.total) $("progress").value = bar.n / bar.total;
  else $("progress").removeAttribute("value");
  for (const button of [$("draw"), $("fill")]) button.disabled = job.state === "running";
  if (job.state !== "running") $("fill").disabled = !state.keyframeRun;
}

async function runJob(action, extra = {}) {
  showError(null);
  const body = { storyboard: currentBoard(), seed: Number($("seed").value), stages: currentStages(), ...extra };
  try {
    let job = await api(`/api/jobs/${action}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify(body) });
    while (job.state === "running") {
      showJob(job);
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await api("/api/job");
    }
    showJob(job);
    if (job.state === "failed") throw new Error(job.message);
    const run = await api(`/api/runs/${job.run}`);
    if (action === "fill") showVideo(run); else showKeyframes(run);
  } catch (error) { showError(error.message); }
}

// ---- results ----

function flatPrompts(board) { return board.shots.flatMap((shot) => shot.prompts); }

function showKeyframes(run) {
  state.keyframeRun = run.run;
  $("fill").disabled = false;
  $("keyframe-run").textContent = run.run;
  const prompts = flatPrompts(run.storyboard);
  $("keyframes").replaceChildren(...run.keyframes.map((name, index) => {
    const upload = element("input", { type: "file", accept: "image/*", onchange: (event) => replaceKeyframe(index, event) });
    return element("figure", { "data-index": index },
      element("img", { src: `/runs/${run.run}/keyframes/${name}`, alt: `keyframe ${index}` }),
      element("figcaption", { text: `${index}: ${promptText(prompts[index])}` }),
      element("div", { class: "row" },
        element("button", { type: "button", text: "Redraw", title: "draw this keyframe again with a new seed",
                            onclick: () => runJob("redraw", { from_run: state.keyframeRun, index }) }),
        element("label", { class: "file-button", title: "replace this keyframe by your own picture" }, "Upload…", upload)));
  }));
}

function boardEntry(index) {
  let remaining = index;
  for (const shot of state.board.shots) {
    if (remaining < shot.prompts.length) return [shot, remaining];
    remaining -= shot.prompts.length;
  }
  throw new Error(`the storyboard has no keyframe ${index}`);
}

async function replaceKeyframe(index, event) {
  const file = event.target.files[0];
  if (!file) return;
  try {
    const image = await uploadPicture(file);
    const [shot, k] = boardEntry(index);
    shot.prompts[k] = { image, prompt: promptText(shot.prompts[k]) || file.name };
    renderShots();
    await runJob("redraw", { from_run: state.keyframeRun, index });
  } catch (error) { showError(error.message); }
}

function showVideo(run) {
  $("video-panel").hidden = false;
  $("video-run").textContent = run.run;
  $("video").src = `/runs/${run.run}/video.mp4`;
  $("download").href = `/runs/${run.run}.zip`;
  $("run-path").textContent = `runs/${run.run}/run.json`;
  $("flows").replaceChildren(...run.flows.map((name) => element("figure", {},
    element("img", { src: `/runs/${run.run}/flow/${name}`, alt: `flow ${name}` }), element("figcaption", { text: name }))));
  const record = run.record;
  const rows = [["stages", Object.entries(record.choices || {}).map(([g, c]) => `${g}=${c}`).join("  ")],
                ["frames", `${record.frame_count} at ${record.fps} fps, ${record.size_hw.join("x")} px`],
                ...Object.entries(record.timings).map(([key, value]) => [key, value.toFixed(2)]),
                ...Object.entries(record.metrics).filter(([, value]) => value !== null)
                  .map(([key, value]) => [key, typeof value === "number" ? value.toFixed(3) : String(value)]),
                ...(record.warnings || []).map((warning) => ["warning", warning])];
  $("facts").replaceChildren(...rows.map(([key, value]) => element("tr", {}, element("td", { text: key }), element("td", { text: value }))));
}

// ---- start ----

async function start() {
  $("load-demo").addEventListener("click", async () => setBoard(await api("/api/demo")));
  $("load-yaml").addEventListener("change", loadYaml);
  $("save-yaml").addEventListener("click", saveYaml);
  $("add-shot").addEventListener("click", () => { state.board.shots.push({ prompts: [""] }); renderShots(); });
  $("draw").addEventListener("click", () => runJob("keyframes"));
  $("fill").addEventListener("click", () => runJob("fill", { from_run: state.keyframeRun }));
  state.options = await api("/api/options");
  state.choices = { ...state.options.defaults };
  renderStages();
  setBoard(await api("/api/demo"));
  showJob(await api("/api/job"));
}

start().catch((error) => showError(error.message));
