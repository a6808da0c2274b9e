/** Types of commandShorthand.js (CommonJS, shared with the Node-RED nodes). */
export type ShorthandBody = { action: 'dim'; level: number } | { action: string };

/** `45` / "45" → { action: "dim", level: 45 }; "ON" → { action: "on" }; anything else → null. */
export function commandShorthand(payload: unknown): ShorthandBody | null;
