import { encode } from '@msr/protocol/codec';
import type { KeyframeMessage, ServerMessage } from '@msr/protocol/messages';
import { SUBPROTOCOL_JSON, type Subprotocol } from '@msr/protocol/wire';

// The server's side of the wire: messages as the replay core produces them, keyframe states still
// the database's text, and their encoding for a socket. Clients only ever see protocol messages.

/**
 * A JSON object held as the text the database sent (jsonb::text). A keyframe's states go into JSON
 * messages as that text, never parsed and written out again (for 10,000 entities that pair cost
 * about 25 ms of the server's CPU per keyframe); msgpack parses it, once however many sockets share
 * the session. Numbers keep the exact digits PostgreSQL stored.
 */
export class JsonText {
  private parsed: unknown;
  constructor(readonly text: string) {}

  value(): unknown {
    if (this.parsed === undefined) this.parsed = JSON.parse(this.text) as unknown;
    return this.parsed;
  }

  toJSON(): unknown {
    return this.value();
  }
}

/** An entity of a keyframe as the server sends it: the wire shape, its state still text. */
export interface KeyframeTextEntity {
  readonly table: string;
  readonly id: string;
  readonly state: JsonText;
}

/** A keyframe part whose states are JSON text; on the wire it is a KeyframeMessage. */
export type KeyframeText = Omit<KeyframeMessage, 'entities'> & { entities: readonly KeyframeTextEntity[] };

/** What the server sends: a protocol message, or a keyframe part still holding JSON text. */
export type OutgoingMessage = ServerMessage | KeyframeText;

const holdsText = (message: object): message is KeyframeText => {
  const entities = (message as { entities?: unknown }).entities;
  return (
    Array.isArray(entities) &&
    entities.length > 0 &&
    (entities[0] as KeyframeTextEntity).state instanceof JsonText
  );
};

/** One entity as JSON, its state spliced in as the database's text. */
export const entityJson = (entity: KeyframeTextEntity): string =>
  `{"table":${JSON.stringify(entity.table)},"id":${JSON.stringify(entity.id)},"state":${entity.state.text}}`;

/**
 * Encodes what the server sends for the socket's subprotocol. A keyframe holding text is written
 * around its states for JSON, and sent with its states parsed for msgpack.
 */
export function encodeOutgoing(message: OutgoingMessage, subprotocol: Subprotocol): string | Uint8Array {
  if (!holdsText(message)) return encode(message, subprotocol);
  const { entities, ...header } = message;
  if (subprotocol !== SUBPROTOCOL_JSON) {
    return encode(
      { ...header, entities: entities.map((e) => ({ table: e.table, id: e.id, state: e.state.value() })) },
      subprotocol,
    );
  }
  const head = JSON.stringify(header);
  return `${head.slice(0, -1)},"entities":[${entities.map(entityJson).join(',')}]}`;
}
