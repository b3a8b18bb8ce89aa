// Bookmarks: replay times a user keeps with a label, per server, in the browser's localStorage, so
// they are still there next time; each opens (seeks) the replay at its time.
import { timeText } from './time-text.js';

export interface Bookmark {
  readonly t: number;
  readonly label: string;
}

const MAX_BOOKMARKS = 50;

export class Bookmarks {
  private items: Bookmark[];

  constructor(
    private readonly storageKey: string,
    private readonly list: HTMLOListElement,
    private readonly open: (t: number) => void,
  ) {
    this.items = Bookmarks.load(storageKey);
    this.render();
  }

  add(t: number, label = timeText(t)): void {
    this.items = [...this.items.filter((b) => b.t !== t), { t, label }].sort((a, b) => a.t - b.t);
    this.items = this.items.slice(-MAX_BOOKMARKS);
    this.save();
    this.render();
  }

  remove(t: number): void {
    this.items = this.items.filter((b) => b.t !== t);
    this.save();
    this.render();
  }

  get all(): readonly Bookmark[] {
    return this.items;
  }

  private render(): void {
    this.list.replaceChildren(
      ...this.items.map((b) => {
        const item = document.createElement('li');
        const go = document.createElement('button');
        go.type = 'button';
        go.textContent = b.label;
        go.setAttribute('aria-label', `Go to bookmark ${b.label}`);
        go.addEventListener('click', () => this.open(b.t));
        const drop = document.createElement('button');
        drop.type = 'button';
        drop.textContent = '×';
        drop.setAttribute('aria-label', `Remove bookmark ${b.label}`);
        drop.addEventListener('click', () => this.remove(b.t));
        item.append(go, drop);
        return item;
      }),
    );
  }

  private save(): void {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(this.items));
    } catch {
      // Storage full or refused (private mode): bookmarks last as long as the page.
    }
  }

  private static load(key: string): Bookmark[] {
    try {
      const parsed = JSON.parse(localStorage.getItem(key) ?? '[]') as unknown;
      return Array.isArray(parsed)
        ? parsed.filter((b): b is Bookmark => typeof b?.t === 'number' && typeof b?.label === 'string')
        : [];
    } catch {
      return [];
    }
  }
}
