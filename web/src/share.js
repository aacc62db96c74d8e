// The shareable link: the input, its name and the chosen format in the URL fragment.
//
// The fragment never leaves the browser (it is not part of an HTTP request), so a
// shared configuration is not sent anywhere. The text is deflated (CompressionStream,
// built into current browsers) and base64url-encoded: configs are repetitive and
// shrink to a third or less, which keeps links short enough for chat tools.

const VERSION = 'v1';

/** Longest fragment produced; beyond this a link is unwieldy and some tools cut it. */
export const MAX_FRAGMENT_CHARS = 64 * 1024;

async function pipe(bytes, stream) {
  const out = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

function toBase64Url(bytes) {
  let binary = '';
  // Chunked: String.fromCharCode(...bytes) overflows the stack on large arrays.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * The fragment (without `#`) for `{text, name, format}`, or null when it would be
 * longer than MAX_FRAGMENT_CHARS.
 */
export async function encodeShare({ text, name, format }) {
  const packed = await pipe(new TextEncoder().encode(text), new CompressionStream('deflate-raw'));
  const params = new URLSearchParams({ n: name, f: format });
  const fragment = `${VERSION}&${params}&z=${toBase64Url(packed)}`;
  return fragment.length > MAX_FRAGMENT_CHARS ? null : fragment;
}

/**
 * `{text, name, format}` from a fragment (with or without `#`); null when the fragment
 * is not a share link (e.g. `#rule-HA109`); throws when it is one but is damaged.
 */
export async function decodeShare(fragment) {
  const body = fragment.replace(/^#/, '');
  if (!body.startsWith(`${VERSION}&`)) return null;
  const params = new URLSearchParams(body.slice(VERSION.length + 1));
  const packed = params.get('z');
  if (packed === null) throw new Error('the link has no input (z=) in it');
  let text;
  try {
    const bytes = await pipe(fromBase64Url(packed), new DecompressionStream('deflate-raw'));
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error('the link is damaged: its input cannot be decompressed (was it cut off?)');
  }
  return { text, name: params.get('n') || 'config.yaml', format: params.get('f') || 'auto' };
}
