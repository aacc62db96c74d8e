// Maps the core's finding positions onto the editor's document.
//
// The core counts lines from 1 and columns from 1 in Unicode scalar values
// (`chars()` in Rust); CodeMirror addresses the document in UTF-16 code units. The two
// differ on every character outside the Basic Multilingual Plane (emoji, some CJK), so
// a plain `from + column - 1` would put underlines in the wrong place after one.

/**
 * UTF-16 offset inside `lineText` of the 1-based `column`-th character, clamped to the
 * line's end (a column past the end points at the end).
 */
export function columnToOffset(lineText, column) {
  let offset = 0;
  for (let c = 1; c < column && offset < lineText.length; c++) {
    const code = lineText.charCodeAt(offset);
    const isHighSurrogate = code >= 0xd800 && code <= 0xdbff;
    offset += isHighSurrogate && offset + 1 < lineText.length ? 2 : 1;
  }
  return Math.min(offset, lineText.length);
}

/**
 * The range to underline for a finding at (`line`, `column`) in `doc` (a CodeMirror
 * `Text`), or null when the finding has no position. A finding marks where its
 * subject starts; the underline runs to the end of the line's content (trailing blanks
 * excluded) because that is the value or key the message is about, and is at least
 * one character wide so it stays visible (zero only on an empty line).
 */
export function findingRange(doc, line, column) {
  if (!Number.isInteger(line) || line < 1) return null;
  const docLine = doc.line(Math.min(line, doc.lines));
  const text = docLine.text;
  const start = columnToOffset(text, Number.isInteger(column) && column > 0 ? column : 1);
  const contentEnd = text.replace(/\s+$/, '').length;
  const end = contentEnd > start ? contentEnd : Math.min(start + 1, text.length);
  return { from: docLine.from + start, to: docLine.from + end };
}
