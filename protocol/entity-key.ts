// How a replayed world is keyed, the same in the client, the player and the server: one entity
// per table and id, and a truncate (`op: "t"`) clears its whole table.

/** The key of an entity in a state map: `schema.table|id`. */
export const entityKey = (table: string, id: string): string => `${table}|${id}`;

/** The table and id of a key made by entityKey (the first `|` ends the table: ids may hold one). */
export function splitEntityKey(key: string): { table: string; id: string } {
  const bar = key.indexOf('|');
  return { table: key.slice(0, bar), id: key.slice(bar + 1) };
}

/** Removes every entity of `table` from a map keyed by entityKey: what a truncate does. */
export function deleteTable(map: Map<string, unknown>, table: string): void {
  const prefix = `${table}|`;
  for (const key of [...map.keys()]) if (key.startsWith(prefix)) map.delete(key);
}
