// From the editor's text (or a loaded file) to the bytes the core lints.

const encoder = new TextEncoder();

/**
 * The UTF-8 bytes of `doc` (a CodeMirror Text), or, for a document that cannot fit in
 * `maxBytes`, only its first `maxBytes + 1` bytes: enough for the core to report the
 * size (HA001), exactly as the CLI reads at most that much of a file. A document longer
 * than `maxBytes` UTF-16 units is over the limit for sure (each unit is at least one
 * UTF-8 byte), so a 100 MB paste costs one small slice, not a 100 MB copy.
 */
export function documentBytes(doc, maxBytes) {
  if (doc.length <= maxBytes) return encoder.encode(doc.toString());
  const bytes = new Uint8Array(maxBytes + 1);
  encoder.encodeInto(doc.sliceString(0, maxBytes + 1), bytes);
  return bytes;
}

/** Reads a file as the CLI does: at most `maxBytes + 1` bytes. */
export async function readFileBytes(file, maxBytes) {
  return new Uint8Array(await file.slice(0, maxBytes + 1).arrayBuffer());
}

/** Text for the editor: the bytes decoded, invalid UTF-8 shown as U+FFFD. */
export function displayText(bytes) {
  return new TextDecoder('utf-8').decode(bytes);
}

export function isUtf8(bytes) {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** "4 MiB", "5.2 MB": a byte count as people read it. */
export function formatBytes(n) {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)} MB`;
  if (n >= 1000) return `${(n / 1000).toFixed(1)} kB`;
  return `${n} bytes`;
}
