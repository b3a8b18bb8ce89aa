// The markup and styles of <msr-player>, in its shadow root. Colours and sizes come from CSS custom
// properties (--msr-background, --msr-panel, --msr-text, --msr-muted, --msr-accent, --msr-bar,
// --msr-border, --msr-font), so a host page restyles it without reaching inside.

const STYLES = `
:host {
  display: block;
  font: var(--msr-font, 14px system-ui, sans-serif);
  color: var(--msr-text, #dde3ea);
  background: var(--msr-background, #10151c);
}
.row { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: center; padding: 0.4rem 0.6rem; background: var(--msr-panel, #18202a); }
#status { margin-left: auto; color: var(--msr-muted, #8fa3b8); }
#status.problem { color: var(--msr-accent, #ffb300); }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0.2rem 0.8rem; margin: 0.6rem; }
dt { color: var(--msr-muted, #8fa3b8); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
#timeline-box { display: flex; flex-direction: column; padding: 0.4rem 0.6rem; }
#activity { width: 100%; height: 36px; background: var(--msr-background, #0b1016); }
#timeline { width: 100%; margin: 0; }
#range-labels { display: flex; justify-content: space-between; color: var(--msr-muted, #8fa3b8); font-size: 12px; }
fieldset { border: 1px solid var(--msr-border, #3b4b5e); margin: 0.4rem 0.6rem; }
fieldset label { margin-right: 0.8rem; }
#bookmarks { margin: 0; padding-left: 1.2rem; }
#bookmarks button { padding: 0 0.4rem; }
#inspector { margin: 0.6rem; }
#inspector h2 { font-size: 1rem; margin: 0.4rem 0; }
#entity-state { white-space: pre-wrap; font-size: 12px; max-width: 24rem; }
#entity-history { max-height: 14rem; overflow: auto; padding-left: 1.2rem; font-size: 12px; }
input[type='text'] { background: var(--msr-background, #0b1016); color: inherit; border: 1px solid var(--msr-border, #3b4b5e); padding: 0.3rem; }
button, select { background: var(--msr-panel, #2a3644); color: inherit; border: 1px solid var(--msr-border, #3b4b5e); padding: 0.3rem 0.7rem; }
button:focus-visible, select:focus-visible, input:focus-visible { outline: 2px solid var(--msr-accent, #ffb300); }
`;

const SPEEDS = ['-max', '-60', '-8', '-1', '1', '8', '60', '600', 'max'];
const speedLabel = (v: string) =>
  v.startsWith('-') ? `◀ ${v.slice(1)}${v === '-max' ? '' : '×'}` : `${v}${v === 'max' ? '' : '×'}`;

// In tab order: the transport first, then the timeline, then time entry, loop, filter, bookmarks.
export const PLAYER_TEMPLATE = `
<style>${STYLES}</style>
<div class="row" part="controls">
  <button id="step-back" type="button" aria-label="Step 10 seconds back">−10 s</button>
  <button id="play" type="button">Play</button>
  <button id="step-forward" type="button" aria-label="Step 10 seconds ahead">+10 s</button>
  <label>Speed
    <select id="speed-choice">${SPEEDS.map((v) => `<option value="${v}"${v === '1' ? ' selected' : ''}>${speedLabel(v)}</option>`).join('')}</select>
  </label>
  <button id="live" type="button">Live</button>
  <span id="live-lag" aria-label="how far behind the present"></span>
  <span id="status" role="status" aria-live="polite">connecting…</span>
  <button id="retry" type="button" hidden>Retry</button>
</div>
<div id="timeline-box" part="timeline">
  <canvas id="activity" width="800" height="36" role="img" aria-label="stored events over the available range"></canvas>
  <input id="timeline" type="range" min="0" max="1" step="1000" value="0" aria-label="Timeline: release to seek" />
  <div id="range-labels"><span id="range-start"></span><span id="range-end"></span></div>
</div>
<div class="row">
  <label>Go to <input id="goto" type="text" size="12" placeholder="HH:MM:SS" aria-label="Go to this UTC time" /></label>
  <button id="go" type="button">Go</button>
  <label>Until <input id="until" type="text" size="9" placeholder="HH:MM:SS" aria-label="Play until this UTC time" /></label>
  <button id="play-until" type="button">Play until</button>
  <button id="mark-in" type="button">Loop from here</button>
  <button id="mark-out" type="button">Loop to here</button>
  <label><input id="loop" type="checkbox" /> Loop <span id="loop-range"></span></label>
</div>
<fieldset id="tables"><legend>Tables</legend><span id="tables-hint">all</span></fieldset>
<div class="row">
  <button id="bookmark" type="button">Bookmark</button>
  <ol id="bookmarks" aria-label="Bookmarks"></ol>
  <button id="share" type="button">Link</button>
</div>
<dl part="facts">
  <dt>Replay time</dt><dd id="time">–</dd>
  <dt>Speed (achieved)</dt><dd><span id="speed">–</span> (<span id="achieved">–</span>)</dd>
  <dt>Entities</dt><dd id="count">0</dd>
  <dt>Session</dt><dd id="session">–</dd>
</dl>
<section id="inspector" aria-live="polite" part="inspector">
  <h2>Entity</h2>
  <p id="entity-hint">Pick an entity to see its state and its changes.</p>
  <p id="entity-name"></p>
  <pre id="entity-state"></pre>
  <ol id="entity-history" aria-label="Its changes around the replay time"></ol>
</section>
`;
