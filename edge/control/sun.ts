/**
 * The astronomical clock: sunrise, sunset and solar noon for a place and a date, as UTC instants.
 *
 * Algorithm: the NOAA solar calculator (NOAA Global Monitoring Laboratory, "Solar Calculation
 * Details", https://gml.noaa.gov/grad/solcalc/calcdetails.html, and its JavaScript calculator),
 * which implements the low-precision solar coordinates of Jean Meeus, "Astronomical Algorithms"
 * (2nd ed., 1998), ch. 25 (solar coordinates) and ch. 28 (equation of time). Sunrise and sunset
 * are the instants the centre of the sun is at an altitude of −0.833°: 34′ of atmospheric
 * refraction at the horizon plus 16′ of solar semi-diameter (Meeus ch. 15). Like the NOAA
 * calculator, each event is first estimated with the sun's position at noon and then refined
 * with the position at the estimated instant; accuracy is about a minute for |lat| < 72°.
 *
 * Places with no sunrise or no sunset on a day (polar night, midnight sun) get a typed result,
 * never NaN, decided from the sun's altitude at its culminations (Meeus eq. 13.6): below −0.833° at
 * noon: polar night; above it at the lower culmination before (sunrise) or after (sunset) the
 * day's noon: polar day, no such event.
 */

const DEG = Math.PI / 180;
const MS_PER_DAY = 86_400_000;
/** Altitude of the sun's centre at sunrise/sunset: refraction 34′ + semi-diameter 16′. */
export const SUNRISE_ALTITUDE_DEG = -0.833;

/** A calendar date (month 1..12). */
export interface CalendarDate {
  year: number;
  month: number;
  day: number;
}

/**
 * A sunrise or sunset on one day:
 * - `event`: it happens, at `at` (ms since the epoch, UTC);
 * - `polarDay`: the sun stays above the horizon all day (midnight sun): no such event;
 * - `polarNight`: the sun stays below the horizon all day: no such event.
 */
export type SunEvent = { kind: 'event'; at: number } | { kind: 'polarDay' } | { kind: 'polarNight' };

export interface SunDay {
  date: CalendarDate;
  /** ms UTC of the sun's transit of the meridian on that date */
  solarNoon: number;
  sunrise: SunEvent;
  sunset: SunEvent;
}

/** ms UTC of 00:00 UTC on a calendar date. */
export function utcMidnight(date: CalendarDate): number {
  return Date.UTC(date.year, date.month - 1, date.day);
}

/** Julian Day of an instant (Meeus ch. 7): JD 2440587.5 is 1970-01-01T00:00Z. */
function julianDay(ms: number): number {
  return ms / MS_PER_DAY + 2440587.5;
}

interface SolarCoordinates {
  /** declination of the sun, degrees */
  declination: number;
  /** equation of time, minutes (apparent minus mean solar time) */
  equationOfTime: number;
}

/** NOAA "Solar Calculation Details", columns G..V (Meeus ch. 25 and 28), for an instant. */
export function solarCoordinates(ms: number): SolarCoordinates {
  // Julian centuries since J2000.0
  const t = (julianDay(ms) - 2451545) / 36525;
  // geometric mean longitude and mean anomaly of the sun (Meeus 25.2, 25.3)
  const l0 = mod360(280.46646 + t * (36000.76983 + t * 0.0003032));
  const m = 357.52911 + t * (35999.05029 - 0.0001537 * t);
  // eccentricity of Earth's orbit (Meeus 25.4)
  const e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t);
  // equation of the centre
  const c =
    Math.sin(m * DEG) * (1.914602 - t * (0.004817 + 0.000014 * t)) +
    Math.sin(2 * m * DEG) * (0.019993 - 0.000101 * t) +
    Math.sin(3 * m * DEG) * 0.000289;
  const trueLongitude = l0 + c;
  // apparent longitude: nutation and aberration (Meeus 25.8)
  const omega = 125.04 - 1934.136 * t;
  const lambda = trueLongitude - 0.00569 - 0.00478 * Math.sin(omega * DEG);
  // obliquity of the ecliptic (Meeus 22.2) corrected for nutation (Meeus 25.8)
  const eps0 = 23 + (26 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60) / 60;
  const eps = eps0 + 0.00256 * Math.cos(omega * DEG);
  // declination (Meeus 25.7)
  const declination = Math.asin(Math.sin(eps * DEG) * Math.sin(lambda * DEG)) / DEG;
  // equation of time (Meeus 28.3)
  const y = Math.tan((eps / 2) * DEG) ** 2;
  const eqRad =
    y * Math.sin(2 * l0 * DEG) -
    2 * e * Math.sin(m * DEG) +
    4 * e * y * Math.sin(m * DEG) * Math.cos(2 * l0 * DEG) -
    0.5 * y * y * Math.sin(4 * l0 * DEG) -
    1.25 * e * e * Math.sin(2 * m * DEG);
  return { declination, equationOfTime: (4 * eqRad) / DEG };
}

/** cos of the sunrise hour angle (NOAA column AE): cos H = sin(−0.833°)/(cos φ cos δ) − tan φ tan δ. */
function cosHourAngle(latDeg: number, declDeg: number): number {
  const phi = latDeg * DEG;
  const delta = declDeg * DEG;
  return Math.sin(SUNRISE_ALTITUDE_DEG * DEG) / (Math.cos(phi) * Math.cos(delta)) - Math.tan(phi) * Math.tan(delta);
}

/**
 * Altitude of the sun at its upper (noon) and lower (midnight) culmination, degrees: Meeus eq. 13.6,
 * sin h = sin φ sin δ + cos φ cos δ cos H, with H = 0° and H = 180°.
 */
function culmination(latDeg: number, declDeg: number, which: 'upper' | 'lower'): number {
  return which === 'upper' ? 90 - Math.abs(latDeg - declDeg) : Math.abs(latDeg + declDeg) - 90;
}

/** Minutes after 00:00 UTC of the meridian transit, for the sun's position at `ms` (NOAA column X). */
function noonMinutes(lonDeg: number, ms: number): number {
  return 720 - 4 * lonDeg - solarCoordinates(ms).equationOfTime;
}

const HALF_DAY = MS_PER_DAY / 2;

/**
 * The sunrise before (or the sunset after) the transit at `noon`. It exists if the sun is above
 * −0.833° at that transit and below it at the lower culmination half a day before (sunrise) or
 * after (sunset): judging each event by the sun's declination at its own lower culmination, not at
 * noon, keeps the short dip of the last night before the midnight sun (a sunset, then a last
 * sunrise) which a noon-only test loses.
 */
function eventAt(kind: 'rise' | 'set', latDeg: number, lonDeg: number, midnight: number, noon: number): SunEvent {
  if (culmination(latDeg, solarCoordinates(noon).declination, 'upper') <= SUNRISE_ALTITUDE_DEG) return { kind: 'polarNight' };
  const low = noon + (kind === 'rise' ? -HALF_DAY : HALF_DAY);
  if (culmination(latDeg, solarCoordinates(low).declination, 'lower') >= SUNRISE_ALTITUDE_DEG) return { kind: 'polarDay' };
  let estimate = noon;
  // first with the sun's position at noon, then twice at the estimated instant (NOAA calcSunriseSet);
  // the event exists (above), so a grazing one is clamped to the culmination
  for (let i = 0; i < 3; i++) {
    const { declination, equationOfTime } = solarCoordinates(estimate);
    const h = Math.acos(Math.min(1, Math.max(-1, cosHourAngle(latDeg, declination)))) / DEG;
    const minutes = 720 - 4 * (lonDeg + (kind === 'rise' ? h : -h)) - equationOfTime;
    estimate = midnight + minutes * 60_000;
  }
  return { kind: 'event', at: Math.round(estimate) };
}

/**
 * Sunrise, solar noon and sunset of a calendar date at a place (lat north positive, lon east
 * positive). The events are those around the meridian transit of that date, i.e. of the day as
 * local mean solar time counts it, which is the local civil date wherever the time zone is within
 * a few hours of the sun (everywhere people live). At high latitudes a sunset may fall after the
 * next local midnight; it still belongs to this date.
 */
export function sunDay(latDeg: number, lonDeg: number, date: CalendarDate): SunDay {
  const midnight = utcMidnight(date);
  let noon = midnight + noonMinutes(lonDeg, midnight + 12 * 3_600_000 - lonDeg * 240_000) * 60_000;
  noon = midnight + noonMinutes(lonDeg, noon) * 60_000;
  return {
    date: { ...date },
    solarNoon: Math.round(noon),
    sunrise: eventAt('rise', latDeg, lonDeg, midnight, noon),
    sunset: eventAt('set', latDeg, lonDeg, midnight, noon),
  };
}

function mod360(x: number): number {
  return ((x % 360) + 360) % 360;
}
