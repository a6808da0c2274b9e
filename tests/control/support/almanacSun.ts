/**
 * An independent sunrise/sunset reference for the tests: the algorithm of the U.S. Naval
 * Observatory's "Almanac for Computers, 1990" (Nautical Almanac Office, Washington DC 20392),
 * as transcribed in Ed Williams' Aviation Formulary ("Sunrise/Sunset Algorithm"). It shares no
 * code and no formulation with edge/control/sun.ts (NOAA/Meeus): it works from the day of the
 * year with its own mean-anomaly and right-ascension approximations, zenith 90°50′. Its stated
 * accuracy is about one to two minutes between the polar circles.
 */
const R = Math.PI / 180;
const norm = (x: number, m: number): number => ((x % m) + m) % m;

/** UTC ms of sunrise or sunset on a UTC calendar date, or null when the sun never rises/sets. */
export function almanacSunEvent(kind: 'rise' | 'set', lat: number, lon: number, y: number, mo: number, d: number): number | null {
  const start = Date.UTC(y, 0, 1);
  const midnight = Date.UTC(y, mo - 1, d);
  const n = Math.round((midnight - start) / 86_400_000) + 1;
  const lngHour = lon / 15;
  const t = n + ((kind === 'rise' ? 6 : 18) - lngHour) / 24;
  const m = 0.9856 * t - 3.289;
  const l = norm(m + 1.916 * Math.sin(m * R) + 0.02 * Math.sin(2 * m * R) + 282.634, 360);
  let ra = norm(Math.atan(0.91764 * Math.tan(l * R)) / R, 360);
  ra = (ra + (Math.floor(l / 90) * 90 - Math.floor(ra / 90) * 90)) / 15;
  const sinDec = 0.39782 * Math.sin(l * R);
  const cosDec = Math.cos(Math.asin(sinDec));
  const zenith = 90 + 50 / 60;
  const cosH = (Math.cos(zenith * R) - sinDec * Math.sin(lat * R)) / (cosDec * Math.cos(lat * R));
  if (cosH > 1 || cosH < -1) return null;
  const h = (kind === 'rise' ? 360 - Math.acos(cosH) / R : Math.acos(cosH) / R) / 15;
  const localT = h + ra - 0.06571 * t - 6.622;
  const ut = norm(localT - lngHour, 24);
  return midnight + ut * 3_600_000;
}
