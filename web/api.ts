// The REST reads the player makes, with the token the platform gave the page.

export interface Availability {
  earliest: number | null;
  latest: number | null;
  maxPlaybackRangeDays: number;
}

export interface Activity {
  from: number;
  to: number;
  bucketMs: number;
  buckets: { t: number; events: number }[];
}

export interface EntityChange {
  ts: number;
  op: 'c' | 'u' | 'd' | 'r' | 't';
  state: Record<string, unknown> | null;
}

export class Api {
  constructor(
    /** The server's base URL (`https://msr.example`); '' for the page's own server. */
    private readonly base: string,
    private readonly token: string | undefined,
  ) {}

  private async get<T>(path: string): Promise<T> {
    const response = await fetch(`${this.base}${path}`, {
      headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
    });
    const body = (await response.json()) as T & { code?: string; message?: string };
    if (!response.ok) throw new Error(`${body.code ?? response.status}: ${body.message ?? ''}`);
    return body;
  }

  availability = () => this.get<Availability>('/api/v1/availability');

  activity = (from: number, to: number, buckets: number) =>
    this.get<Activity>(`/api/v1/activity?from=${from}&to=${to}&buckets=${buckets}`);

  history = (table: string, id: string, from: number, to: number) =>
    this.get<{ changes: EntityChange[] }>(
      `/api/v1/entities/${encodeURIComponent(table)}/${encodeURIComponent(id)}/history?from=${from}&to=${to}&limit=50`,
    );
}
