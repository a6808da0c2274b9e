/** Seeded pseudo-random sources for the simulators, the chaos attacks and the crash tests (a run replays from its seed). */

/** A deterministic pseudo-random source (mulberry32), so a seeded simulator repeats itself; seed 0 is taken as 0x9e3779b9. */
export function rng(seed: number): () => number {
  return mulberry32(seed >>> 0 || 0x9e3779b9);
}

/** mulberry32: a small seeded PRNG in [0, 1), the seed taken as it is (a uint32), so a run can be replayed from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
