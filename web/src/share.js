// The shareable link: the input, its name and the chosen format in the URL fragment,
// with the values of sensitive keys (passwords, secret keys, tokens) masked.
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

// Substrings (case-insensitive) of keys whose values Flink masks in its logs: the
// core's list (SENSITIVE in src/options.rs, whose test checks this copy keeps up).
export const SENSITIVE_KEY_PARTS = [
  'password',
  'secret',
  'fs.azure.account.key',
  'apikey',
  'auth-params',
  'service-key',
  'token',
  'basic-auth',
  'jaas.config',
  'http-headers',
];

/** What a sensitive value is replaced by, as the linter shows it. */
export const MASK = '******';

/** Whether Flink masks the values of `key` (so a share link never carries them). */
export function isSensitiveKey(key) {
  const lower = key.toLowerCase();
  return SENSITIVE_KEY_PARTS.some((part) => lower.includes(part));
}

// `key: value` in flink-conf.yaml, config.yaml or a manifest, at any indentation, the
// key optionally quoted or a list item's.
const KEY_LINE = /^(\s*(?:-\s+)?)(["']?)([^\s"'#:][^"'#:]*?)\2(\s*:)(?:(\s+)(.*))?$/;
const PEM_BEGIN = /-----BEGIN [^-]*-----/;
const PEM_END = /-----END [^-]*-----/;

/**
 * `text` with the values of sensitive keys replaced by MASK: flat and nested keys (the
 * dotted path of a nested one is checked too), block scalars and nested maps under such
 * a key, lines that continue such a value (a PEM body under `s3.secret-key:`), and any
 * PEM block. Lines are kept, so finding positions stay. `masked` counts masked lines.
 */
export function maskSecrets(text) {
  const stack = []; // {indent, key} of the keys enclosing the current line
  let blockIndent = -1; // lines indented deeper than this belong to a sensitive key
  let continuing = false; // a sensitive flat value may continue on lines without ": "
  let inPem = false;
  let masked = 0;
  const hide = (line) => {
    masked++;
    return `${line.match(/^\s*/)[0]}${MASK}`;
  };
  const lines = text.split('\n').map((line) => {
    const trimmed = line.trim();
    const indent = line.length - line.trimStart().length;
    if (trimmed === '') return line;
    if (blockIndent >= 0) {
      if (indent > blockIndent) return hide(line);
      blockIndent = -1;
    }
    const key = trimmed.startsWith('#') ? null : line.match(KEY_LINE);
    if (!key) {
      if (continuing || inPem || PEM_BEGIN.test(line)) {
        inPem = (inPem || PEM_BEGIN.test(line)) && !PEM_END.test(line);
        return trimmed.startsWith('#') && !inPem && !continuing ? line : hide(line);
      }
      return line;
    }
    continuing = false;
    while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
    const name = key[3].trim();
    stack.push({ indent, key: name });
    const path = stack.map((k) => k.key).join('.');
    const value = key[6] ?? '';
    const prefix = `${key[1]}${key[2]}${key[3]}${key[2]}${key[4]}`;
    if (isSensitiveKey(name) || isSensitiveKey(path)) {
      if (value === '' || value.startsWith('#') || /^[|>]/.test(value)) {
        blockIndent = indent; // a block scalar or a nested map: all of it
        return line;
      }
      continuing = true;
      inPem = false;
      masked++;
      return `${prefix} ${MASK}`;
    }
    if (inPem || PEM_BEGIN.test(value)) {
      inPem = (inPem || PEM_BEGIN.test(value)) && !PEM_END.test(value);
      masked++;
      return `${prefix} ${MASK}`;
    }
    return line;
  });
  return { text: lines.join('\n'), masked };
}

/**
 * The fragment (without `#`) for `{text, name, format}`, or null when it would be
 * longer than MAX_FRAGMENT_CHARS. The values of sensitive keys are masked first
 * (maskSecrets): a link is pasted into chats and tickets, a secret must not travel in it.
 */
export async function encodeShare({ text: input, name, format }) {
  const { text } = maskSecrets(input);
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
