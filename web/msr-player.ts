// <msr-player>: a replay session's controls as a framework-free custom element. It connects to an
// MSR server, opens a session and keeps the replayed state (`player.client.state`); the host page
// draws that state however it likes on each `msr-change` event. Attributes, read when the element
// is connected: `server` (base URL; default the page's own), `token` (AUTH_MODE=jwt), `t`, `speed`,
// `tables` (comma-separated) and `entity` (`table|id`) to open at, and `link`: take those from the
// page's query string too and write the Link button's address there.
import { ReplayClient, ReplayRequestError, splitEntityKey, type ConnectionEvent } from '@msr/protocol/core';
import type { AnyServerMessage, Speed } from '@msr/protocol/messages';
import { SUBPROTOCOL_V2_JSON } from '@msr/protocol/wire';
import { drawActivity } from './activity-strip.js';
import { Api, type Activity, type Availability } from './api.js';
import { Bookmarks } from './bookmarks.js';
import { Inspector } from './inspector.js';
import { PLAYER_TEMPLATE } from './player-template.js';
import { parseTime, timeText } from './time-text.js';

/** How far a step (button or arrow key) goes. */
const STEP_MS = 10_000;
/** How often the activity strip is read again (the live edge moves on). */
const ACTIVITY_EVERY_MS = 30_000;
/** The session's range reaches this far into the future, so that it can follow live events. */
const FUTURE_MS = 6 * 3_600_000;

/** What a user is told for an error code (others show the server's own words). */
const EXPLAINED: Record<string, string> = {
  SESSION_LIMIT: 'all replay sessions are in use; retry in a minute',
  USER_SESSION_LIMIT: 'you hold as many sessions as you may; close one, then retry',
  OUT_OF_RANGE: 'that time is outside the stored history',
  TOKEN_EXPIRED: 'your sign-in has expired: sign in again',
  TOKEN_MISSING: 'this server needs a sign-in token',
  UNAUTHORIZED: 'the server did not accept the sign-in token',
  FORBIDDEN: 'this session belongs to someone else',
  UNAVAILABLE: 'the server cannot read its history just now; it retries by itself',
  SHUTTING_DOWN: 'the server is restarting; reconnecting',
};

const speedOf = (value: string): Speed => (value === 'max' || value === '-max' ? value : Number(value));

export class MsrPlayer extends HTMLElement {
  /** The replay client once connected: its `state` map is the replayed world at `client.t`. */
  client: ReplayClient | undefined;
  private readonly root = this.attachShadow({ mode: 'open' });
  private api!: Api;
  private inspector!: Inspector;
  private bookmarks: Bookmarks | undefined;
  private availability: Availability | undefined;
  private activity: Activity | undefined;
  private range = { from: 0, to: 0 };
  private loop: { from?: number; to?: number } = {};
  private readonly tablesSeen = new Set<string>();
  private tables: string[] | undefined;
  private readonly stops: (() => void)[] = [];
  private drawRequested = false;

  connectedCallback(): void {
    this.root.innerHTML = PLAYER_TEMPLATE;
    this.wireControls();
    void this.start();
  }

  disconnectedCallback(): void {
    for (const stop of this.stops.splice(0)) stop();
    this.client?.disconnect();
    this.client = undefined;
  }

  /** Seeks to `t` (epoch ms), kept inside the stored history. */
  seek(t: number): Promise<unknown> {
    const client = this.requireClient();
    return client.seek(Math.min(Math.max(t, this.range.from), Date.now() - 1000));
  }

  /** Shows an entity (`table|id`) in the inspector: its state now and its changes around now. */
  inspect(key: string): Promise<void> {
    const client = this.requireClient();
    return this.inspector.inspect(key, client.state.get(key), client.t);
  }

  /** The inspected entity (`table|id`), if any. */
  get inspected(): string | undefined {
    return this.inspector?.key;
  }

  private requireClient(): ReplayClient {
    if (!this.client) throw new Error('not connected yet');
    return this.client;
  }

  private $<T extends HTMLElement>(id: string): T {
    return this.root.getElementById(id) as T;
  }

  private status(text: string, problem = false, retry?: () => void): void {
    const line = this.$('status');
    line.textContent = text;
    line.classList.toggle('problem', problem);
    const button = this.$<HTMLButtonElement>('retry');
    button.hidden = !retry;
    button.onclick = retry ? () => retry() : null;
  }

  /** Reads a setting: the attribute, else (with `link`) the page's query string. */
  private setting(name: string, queryName = name): string | undefined {
    const given = this.getAttribute(name);
    if (given !== null) return given;
    return this.hasAttribute('link')
      ? (new URLSearchParams(location.search).get(queryName) ?? undefined)
      : undefined;
  }

  private async start(): Promise<void> {
    try {
      const base = (this.getAttribute('server') ?? '').replace(/\/$/, '');
      const token = this.setting('token', 'access_token');
      this.api = new Api(base, token);
      this.inspector = new Inspector(this.api, this.root);
      this.availability = await this.api.availability();
      if (this.availability.earliest === null) return this.status('no history stored yet');
      const socketBase = base
        ? base.replace(/^http/, 'ws')
        : `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
      const client = await ReplayClient.connect(`${socketBase}/v1/replay`, {
        // Keyframes grouped by table: a fifth fewer bytes for the page to take in.
        subprotocol: SUBPROTOCOL_V2_JSON,
        reconnect: true,
        ...(token ? { token } : {}),
      });
      this.client = client;
      this.bookmarks = new Bookmarks(`msr-bookmarks:${socketBase}`, this.$('bookmarks'), (t) =>
        this.attempt(() => this.seek(t)),
      );
      this.listen(client);
      const speed = this.setting('speed');
      const choice = this.$<HTMLSelectElement>('speed-choice');
      if (speed && [...choice.options].some((o) => o.value === speed)) choice.value = speed;
      this.tables = this.setting('tables')?.split(',').filter(Boolean);
      await this.openSession(Number(this.setting('t')));
      void this.readActivity();
      const timer = setInterval(() => void this.readActivity(), ACTIVITY_EVERY_MS);
      this.stops.push(() => clearInterval(timer));
      const entity = this.setting('entity');
      if (entity) {
        // Once the keyframe is in, so that its state shows.
        await client.waitFor((m) => m.type === 'keyframe' && m.last, 30_000).catch(() => undefined);
        await this.inspect(entity);
      }
    } catch (err) {
      this.failed(err, () => {
        this.disconnectedCallback();
        this.connectedCallback();
      });
    }
  }

  /** Opens a session over the whole stored history at `at` (or the newest event), with the chosen tables. */
  private async openSession(at: number): Promise<void> {
    const client = this.requireClient();
    const availability = this.availability!;
    const from = availability.earliest!;
    const to = Math.min(
      from + availability.maxPlaybackRangeDays * 86_400_000 - 60_000,
      Date.now() + FUTURE_MS,
    );
    this.range = { from, to };
    const start =
      Number.isFinite(at) && at > 0 ? Math.min(Math.max(at, from), Date.now()) : availability.latest!;
    const choice = this.$<HTMLSelectElement>('speed-choice').value;
    try {
      const opened = await client.open({
        from,
        to,
        at: start,
        speed: speedOf(choice),
        ...(this.tables ? { tables: this.tables } : {}),
      });
      this.$('session').textContent = opened.session.slice(0, 8);
    } catch (err) {
      return this.failed(err, () => void this.openSession(at));
    }
    const timeline = this.$<HTMLInputElement>('timeline');
    timeline.min = String(from);
    timeline.max = String(Date.now());
    this.$('range-start').textContent = timeText(from).slice(0, 19);
    this.$('speed').textContent = `${choice}×`;
    this.status('connected');
  }

  /** A refused request or a failed start, in words, with a retry where one may help. */
  private failed(err: unknown, retry?: () => void): void {
    const code = err instanceof ReplayRequestError ? err.code : undefined;
    const text = (code && EXPLAINED[code]) ?? (err as Error).message;
    this.status(text, true, retry);
  }

  private attempt(work: () => Promise<unknown>): void {
    void work().catch((err: unknown) => this.failed(err));
  }

  private listen(client: ReplayClient): void {
    client.on((m) => this.onMessage(m));
    client.onConnection((event) => this.onConnection(event));
  }

  private onMessage(m: AnyServerMessage): void {
    if (m.type === 'error') this.status(EXPLAINED[m.code] ?? `${m.code}: ${m.message}`, true);
    else if (m.type === 'end') this.status('end of range');
    else if (m.type === 'keyframe' && m.last) this.noteTables();
    else if (m.type === 'clock') this.continueLoop(m.t, m.playing);
    if (this.drawRequested) return;
    this.drawRequested = true;
    requestAnimationFrame(() => {
      this.drawRequested = false;
      this.render();
      this.dispatchEvent(new CustomEvent('msr-change', { detail: { client: this.client } }));
    });
  }

  private onConnection(event: ConnectionEvent): void {
    if (event.state === 'open') this.status('connected');
    else if (event.state === 'reconnecting')
      this.status(`connection lost; reconnecting (attempt ${event.attempt})`, true);
    else
      this.status(`disconnected: ${event.reason || `close ${event.code}`}`, true, () => {
        this.disconnectedCallback();
        this.connectedCallback();
      });
  }

  private render(): void {
    const client = this.client;
    if (!client) return;
    if (this.inspector.key) this.inspector.showState(client.state.get(this.inspector.key));
    this.$('count').textContent = String(client.state.size);
    this.$('time').textContent = client.t ? timeText(client.t) : '–';
    this.$('achieved').textContent = client.playing ? `${client.achievedSpeed}×` : 'paused';
    this.$('play').textContent = client.playing ? 'Pause' : 'Play';
    const behind = Date.now() - client.t;
    this.$('live-lag').textContent =
      client.playing && behind < 60_000 ? `live −${(behind / 1000).toFixed(1)} s` : '';
    const timeline = this.$<HTMLInputElement>('timeline');
    timeline.max = String(Math.max(Number(timeline.max), Date.now()));
    if (this.root.activeElement !== timeline) timeline.value = String(Math.round(client.t));
    if (this.activity) drawActivity(this.$('activity'), this.activity, client.t);
  }

  private async readActivity(): Promise<void> {
    const strip = this.$<HTMLCanvasElement>('activity');
    const now = Date.now();
    try {
      this.activity = await this.api.activity(
        this.range.from,
        now,
        Math.max(10, Math.floor(strip.width / 4)),
      );
      this.$('range-end').textContent = timeText(now).slice(0, 19);
      drawActivity(strip, this.activity, this.client?.t ?? now);
    } catch (err) {
      this.status(`activity: ${(err as Error).message}`, true);
    }
  }

  /** The tables the unfiltered world holds, as checkboxes: a change opens a session on the ones ticked. */
  private noteTables(): void {
    const before = this.tablesSeen.size;
    for (const key of this.client!.state.keys()) this.tablesSeen.add(splitEntityKey(key).table);
    for (const table of this.tables ?? []) this.tablesSeen.add(table);
    if (this.tablesSeen.size === before) return;
    const boxes = [...this.tablesSeen].sort().map((table) => {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = table;
      box.checked = !this.tables || this.tables.includes(table);
      box.addEventListener('change', () => this.chooseTables());
      label.append(box, ` ${table}`);
      return label;
    });
    this.$('tables-hint').replaceChildren(...boxes);
  }

  private chooseTables(): void {
    const ticked = [...this.root.querySelectorAll<HTMLInputElement>('#tables input:checked')].map(
      (b) => b.value,
    );
    this.tables = ticked.length === this.tablesSeen.size ? undefined : ticked;
    const client = this.requireClient();
    const at = client.t;
    this.attempt(async () => {
      await client.close();
      await this.openSession(at);
    });
  }

  /** With the loop on, reaching its end (a `play until` there) starts it again from its beginning. */
  private continueLoop(t: number, playing: boolean): void {
    const { from, to } = this.loop;
    if (playing || from === undefined || to === undefined || t !== to) return;
    if (!this.$<HTMLInputElement>('loop').checked) return;
    this.attempt(async () => {
      await this.seek(from);
      await this.requireClient().play(to);
    });
  }

  private togglePlay(): void {
    const client = this.requireClient();
    if (client.playing) return this.attempt(() => client.pause());
    const { from, to } = this.loop;
    const looping = this.$<HTMLInputElement>('loop').checked && from !== undefined && to !== undefined;
    if (!looping) return this.attempt(() => client.play());
    this.attempt(async () => {
      if (client.t < from || client.t >= to) await this.seek(from);
      await client.play(to);
    });
  }

  private markLoop(end: 'from' | 'to'): void {
    this.loop[end] = Math.round(this.requireClient().t);
    const { from, to } = this.loop;
    this.$('loop-range').textContent = [from, to]
      .map((t) => (t === undefined ? '…' : timeText(t).slice(11, 19)))
      .join('–');
  }

  /** The address of the replay's state now: the page's own with ?t=&speed=&tables=&entity=. */
  private share(): void {
    const client = this.requireClient();
    const url = new URL(location.href);
    for (const name of ['t', 'speed', 'tables', 'entity']) url.searchParams.delete(name);
    url.searchParams.set('t', String(Math.round(client.t)));
    url.searchParams.set('speed', this.$<HTMLSelectElement>('speed-choice').value);
    if (this.tables) url.searchParams.set('tables', this.tables.join(','));
    if (this.inspector.key) url.searchParams.set('entity', this.inspector.key);
    const link = url.toString();
    if (this.hasAttribute('link')) history.replaceState(null, '', link);
    this.status(`link: ${link}`);
    // Pages without clipboard permission still have the link in the status line (and the address bar).
    void navigator.clipboard?.writeText(link).catch(() => undefined);
  }

  private wireControls(): void {
    const on = (id: string, event: string, handler: () => void) =>
      this.$(id).addEventListener(event, handler);
    const client = () => this.requireClient();
    on('play', 'click', () => this.togglePlay());
    on('step-back', 'click', () => this.attempt(() => this.seek(client().t - STEP_MS)));
    on('step-forward', 'click', () => this.attempt(() => this.seek(client().t + STEP_MS)));
    on('speed-choice', 'change', () => {
      const value = this.$<HTMLSelectElement>('speed-choice').value;
      this.$('speed').textContent = `${value}×`;
      this.attempt(() => client().speed(speedOf(value)));
    });
    on('timeline', 'change', () =>
      this.attempt(() => this.seek(Number(this.$<HTMLInputElement>('timeline').value))),
    );
    on('go', 'click', () => this.typedTime('goto', (t) => this.seek(t)));
    on('play-until', 'click', () =>
      this.typedTime('until', (t) => {
        this.status(`playing until ${timeText(t)}`);
        return client().play(t);
      }),
    );
    on('mark-in', 'click', () => this.markLoop('from'));
    on('mark-out', 'click', () => this.markLoop('to'));
    on('bookmark', 'click', () => this.bookmarks?.add(Math.round(client().t)));
    on('share', 'click', () => this.share());
    on('live', 'click', () => {
      this.$<HTMLSelectElement>('speed-choice').value = '1';
      this.$('speed').textContent = '1×';
      this.attempt(async () => {
        await client().speed(1);
        await client().seek(Date.now() - 2000);
        await client().play();
      });
    });
    const keys = (event: KeyboardEvent) => this.onKey(event);
    document.addEventListener('keydown', keys);
    this.stops.push(() => document.removeEventListener('keydown', keys));
  }

  private typedTime(field: string, then: (t: number) => Promise<unknown>): void {
    const t = parseTime(this.$<HTMLInputElement>(field).value, this.client?.t ?? Date.now());
    if (!Number.isFinite(t)) return this.status(`${field}: type a time as HH:MM:SS (UTC) or a date`, true);
    this.attempt(() => then(t));
  }

  /**
   * Keys, when no field has them: space plays or pauses, the arrows step 10 s back or ahead, + and
   * - pick the next speed in the list.
   */
  private onKey(event: KeyboardEvent): void {
    if (!this.client) return;
    // Inside the shadow root the event's target is this element; its path says which control.
    const target = (event.composedPath()[0] ?? event.target) as HTMLElement;
    if (target.tagName === 'INPUT' || target.tagName === 'SELECT') return;
    if (event.key === ' ') {
      // A focused button takes space as its own click.
      if (target.tagName === 'BUTTON') return;
      this.togglePlay();
    } else if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
      const t = this.client.t + (event.key === 'ArrowLeft' ? -STEP_MS : STEP_MS);
      this.attempt(() => this.seek(t));
    } else if (event.key === '+' || event.key === '-') {
      const choice = this.$<HTMLSelectElement>('speed-choice');
      const next = choice.selectedIndex + (event.key === '+' ? 1 : -1);
      if (next < 0 || next >= choice.options.length) return;
      choice.selectedIndex = next;
      choice.dispatchEvent(new Event('change'));
    } else return;
    event.preventDefault();
  }
}

if (!customElements.get('msr-player')) customElements.define('msr-player', MsrPlayer);
