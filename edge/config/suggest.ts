/** Did-you-mean hints for misspelt keys and names, by edit distance. */

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The candidate closest to `word` (ignoring case), if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const cand of candidates) {
    if (typeof cand !== 'string') continue;
    const d = editDistance(word.toLowerCase(), cand.toLowerCase());
    if (d < bestDist) {
      best = cand;
      bestDist = d;
    }
  }
  const limit = word.length <= 3 ? 1 : word.length <= 6 ? 2 : 3;
  if (bestDist <= limit) return best;
  // a longer or shorter spelling of a key ("baudrate" for "baud", "user" for "username")
  const w = word.toLowerCase();
  let prefix: string | undefined;
  for (const cand of candidates) {
    if (typeof cand !== 'string' || cand.length < 3 || w.length < 3) continue;
    const c = cand.toLowerCase();
    if ((w.startsWith(c) || c.startsWith(w)) && (prefix === undefined || cand.length > prefix.length)) prefix = cand;
  }
  return prefix;
}

/** `unknown bus "rs458"; did you mean "rs485"?`, else the list of what there is. */
export function unknownName(what: string, name: string, known: readonly string[], listLabel: string): string {
  const names = known.filter((k) => typeof k === 'string');
  const hint = didYouMean(name, names);
  if (hint !== undefined) return `unknown ${what} "${name}"; did you mean "${hint}"?`;
  return `unknown ${what} "${name}"; ${listLabel}: ${names.join(', ') || '(none)'}`;
}
