/**
 * One POSIX shell word holding `value` exactly: single quotes, in which no character is
 * special (`$(…)`, backticks, `\`, newlines stay text); a `'` inside ends the quote, adds
 * an escaped quote and reopens it. Every value a copyable command interpolates goes
 * through this (a publisher chooses the filename).
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
