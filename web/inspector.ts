// The entity inspector: the clicked entity's state at the replay time, and its changes in the
// quarter hour around it (GET /api/v1/entities/{table}/{id}/history).
import type { Api } from './api.js';
import { timeText } from './time-text.js';
import { splitEntityKey } from '@msr/protocol/core';

const AROUND_MS = 15 * 60_000;

export class Inspector {
  /** The inspected entity as `table|id` (the client's state key), if any. */
  key: string | undefined;
  private asked = 0;

  constructor(
    private readonly api: Api,
    /** Where its elements are (the player's shadow root). */
    private readonly root: DocumentFragment & { getElementById(id: string): HTMLElement | null },
  ) {}

  private $(id: string): HTMLElement {
    return this.root.getElementById(id)!;
  }

  /** Shows the entity's state (from the replayed map) and asks for its history around `t`. */
  async inspect(key: string, state: Record<string, unknown> | undefined, t: number): Promise<void> {
    this.key = key;
    const { table, id } = splitEntityKey(key);
    this.$('entity-hint').hidden = true;
    this.$('entity-name').textContent = `${table} ${id}`;
    this.showState(state);
    const asked = ++this.asked;
    const list = this.$('entity-history');
    list.textContent = 'loading…';
    try {
      const { changes } = await this.api.history(
        table,
        id,
        t - AROUND_MS,
        Math.min(Date.now(), t + AROUND_MS),
      );
      if (asked !== this.asked) return;
      list.replaceChildren(
        ...changes.map((c) => {
          const item = document.createElement('li');
          const status = c.state && 'status' in c.state ? ` ${String(c.state.status)}` : '';
          item.textContent = `${timeText(c.ts).slice(11)} ${c.op}${status}`;
          if (c.ts > t) item.style.opacity = '0.5';
          return item;
        }),
      );
      if (changes.length === 0) list.textContent = 'no changes in the quarter hour around it';
    } catch (err) {
      if (asked === this.asked) list.textContent = (err as Error).message;
    }
  }

  /** The inspected entity's state as the replay moves on. */
  showState(state: Record<string, unknown> | undefined): void {
    this.$('entity-state').textContent = state
      ? JSON.stringify(state, null, 1)
      : '(not present at this time)';
  }
}
