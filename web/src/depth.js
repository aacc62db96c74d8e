// How deep a document nests, for switching syntax highlighting off on hostile input
// (editor.js). No imports: unit-tested under node.

/** Deeper than this (brackets or indentation levels) is not highlighted; the linter's own bound is the same 64. */
export const MAX_HIGHLIGHTED_DEPTH = 64;

/**
 * Whether `doc` (a CodeMirror Text) nests deeper than MAX_HIGHLIGHTED_DEPTH; stops at the first sign.
 */
export function nestsTooDeep(doc) {
  let brackets = 0;
  let indent = 0;
  let lineStart = true;
  for (const iter = doc.iter(); !iter.next().done;) {
    if (iter.lineBreak) {
      lineStart = true;
      indent = 0;
      continue;
    }
    const text = iter.value;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (lineStart && c === 32) {
        // Two spaces per level is the usual YAML indentation.
        if (++indent > 2 * MAX_HIGHLIGHTED_DEPTH) return true;
        continue;
      }
      lineStart = false;
      if (c === 91 || c === 123) {
        if (++brackets > MAX_HIGHLIGHTED_DEPTH) return true;
      } else if ((c === 93 || c === 125) && brackets > 0) {
        brackets--;
      }
    }
  }
  return false;
}

