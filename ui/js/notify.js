// Getting the agent's attention: a short beep made with WebAudio (no audio file) and the count in
// the tab title, "(3) Atende".

import { t } from "./i18n.js";

let audio = null;
let badge = 0;

/** Browsers start audio only after a user gesture: the first click or key unlocks it. */
function unlock() {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    audio = audio || new Ctx();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}
window.addEventListener("pointerdown", unlock, { capture: true });
window.addEventListener("keydown", unlock, { capture: true });

/** Two short tones. Silent when the browser has not allowed audio yet. */
export function beep() {
  if (!audio || audio.state !== "running") return;
  const start = audio.currentTime + 0.01;
  for (const [offset, frequency] of [[0, 880], [0.16, 1175]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.14);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.15);
  }
}

/** "(n) Atende" in the tab title; n = 0 shows just the name. */
export function setTitleBadge(n) {
  badge = Math.max(0, n | 0);
  renderTitle();
}

export function renderTitle() {
  const name = t("app.name");
  document.title = badge > 0 ? `(${badge}) ${name}` : name;
}
